"""The multi-task network (dict output, every head trained) and the dynamic loss scaler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from partus.data.shift import mirror
from partus.losses import DynamicLossScaler
from partus.models import MultiTaskNet, create_model, list_models
from partus.train.inference import predict_oriented

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(seed: int = 0, **kw) -> MultiTaskNet:
    torch.manual_seed(seed)
    return create_model("multitask_net", **{"features": 8, **kw})


# --------------------------------------------------------------------------- model
def test_registered_with_its_kind():
    assert "multitask_net" in list_models()
    model = tiny()
    assert isinstance(model, MultiTaskNet) and model.kind == "multitask" and model.cls_names == ("mirrored",)


@pytest.mark.parametrize("shape", [(2, 1, 64, 64), (1, 1, 96, 64)])
def test_forward_returns_every_head(shape):
    model = tiny().eval()
    with torch.inference_mode():
        out = model(torch.rand(shape))
    assert isinstance(out, dict) and set(out) == {"seg", "heatmap", "dsnt", "cls"}
    n, _, h, w = shape
    for name in ("seg", "heatmap", "dsnt"):
        assert out[name].shape == (n, 3, h, w), name
        assert torch.isfinite(out[name]).all()
    assert out["cls"].shape == (n, 1) and torch.isfinite(out["cls"]).all()
    # heads are separate: their maps differ
    assert not torch.equal(out["seg"], out["heatmap"]) and not torch.equal(out["heatmap"], out["dsnt"])


def test_cls_names_set_the_cls_width_and_must_not_be_empty():
    model = tiny(cls_names=["mirrored", "standard_plane"]).eval()
    assert model.cls_names == ("mirrored", "standard_plane")
    with torch.inference_mode():
        assert model(torch.rand(2, 1, 64, 64))["cls"].shape == (2, 2)
    with pytest.raises(ValueError, match="cls_names"):
        create_model("multitask_net", features=8, cls_names=())


def test_gradients_reach_every_parameter_when_all_heads_are_used():
    model = tiny().train()
    out = model(torch.rand(2, 1, 64, 64))
    sum(o.mean() for o in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # the classification head reads the encoder only: a cls-only loss leaves the decoder untouched
    model.zero_grad(set_to_none=True)
    model(torch.rand(2, 1, 64, 64))["cls"].sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(("decoder", "head.")))
    assert model.cls_head[-1].weight.grad.abs().sum() > 0


def test_eval_is_deterministic():
    model = tiny().eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        a, b = model(x), model(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- predict_oriented
@pytest.mark.parametrize("name", ["multitask_net", "heatmap_unet"])
def test_mirrored_orientation_is_exactly_equivariant(name):
    torch.manual_seed(0)
    model = create_model(name, features=8).eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64), dtype=np.uint8), rng.integers(0, 256, (128, 96), dtype=np.uint8)]
    gt = np.array([[30.0, 20.0], [10.0, 25.0], [45.0, 40.0]])
    kw = {"input_size": 64}
    std, p_std = predict_oriented(model, images, orientation="standard", **kw)
    flipped = [mirror(im, gt).image for im in images]
    mir, p_mir = predict_oriented(model, flipped, orientation="mirrored", **kw)
    assert np.isfinite(std).all()
    for k, im in enumerate(images):
        expected = std[k].copy()
        expected[:, 0] = (im.shape[1] - 1) - expected[:, 0]
        np.testing.assert_allclose(mir[k], expected, atol=1e-6)
    assert p_std.tolist() == [0.0, 0.0] and p_mir.tolist() == [1.0, 1.0]


def test_auto_orientation_uses_the_orientation_head():
    model = tiny().eval()
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 64), dtype=np.uint8) for _ in range(3)]
    pts, p = predict_oriented(model, images, orientation="auto", input_size=64)
    with torch.inference_mode():
        x = torch.from_numpy(np.stack(images)[:, None].astype(np.float32) / 255)
        expected = torch.sigmoid(model(x)["cls"][:, 0]).numpy()
    np.testing.assert_allclose(p, expected, atol=1e-6)
    for k, im in enumerate(images):  # each scan measured as its head decided
        given = "mirrored" if p[k] > 0.5 else "standard"
        np.testing.assert_allclose(pts[k], predict_oriented(model, [im], orientation=given, input_size=64)[0][0],
                                   atol=1e-6)  # fmt: skip


def test_auto_orientation_reads_the_logit_named_mirrored():
    """The ONNX predictor looks the orientation logit up by name (``cls_names.index("mirrored")``); the torch
    path must read the same logit when it is not the first one."""
    model = tiny(cls_names=("standard_plane", "mirrored")).eval()
    with torch.no_grad():  # make the two logits clearly different
        model.cls_head[-1].bias.copy_(torch.tensor([-8.0, 8.0]))
    images = [np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8)]
    _, p = predict_oriented(model, images, orientation="auto", input_size=64)
    with torch.inference_mode():
        x = torch.from_numpy(images[0][None, None].astype(np.float32) / 255)
        expected = torch.sigmoid(model(x)["cls"][0, 1]).item()
    assert p[0] == pytest.approx(expected, abs=1e-6)


def test_orientation_errors():
    heatmap = create_model("heatmap_unet", features=8).eval()
    img = [np.zeros((64, 64), np.uint8)]
    with pytest.raises(ValueError, match="'auto' needs a multitask model"):
        predict_oriented(heatmap, img, orientation="auto", input_size=64)
    with pytest.raises(ValueError, match="'sideways'"):
        predict_oriented(tiny(), img, orientation="sideways", input_size=64)


# --------------------------------------------------------------------------- DynamicLossScaler
TASKS = ("seg", "heatmap", "dsnt", "cls")


def _losses(*values, grad=False):
    return {t: torch.tensor(float(v), requires_grad=grad) for t, v in zip(TASKS, values, strict=True)}


def test_first_update_sets_the_running_means_to_the_losses():
    s = DynamicLossScaler(TASKS, alpha=0.5).train()
    assert s.scales() == dict.fromkeys(TASKS, 1.0)
    values = [0.8, 0.002, 12.0, 0.3]
    total = s(_losses(*values))
    np.testing.assert_allclose(s.running.numpy(), values, rtol=1e-6)
    expected = sum(v * v**-0.5 for v in values)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose([s.scales()[t] for t in TASKS], np.array(values) ** -0.5, rtol=1e-5)


def test_alpha_zero_is_the_plain_sum():
    s = DynamicLossScaler(TASKS, alpha=0.0).train()
    for values in ([0.8, 0.002, 12.0, 0.3], [0.5, 0.001, 9.0, 0.1]):
        assert s(_losses(*values)).item() == pytest.approx(sum(values), rel=1e-6)
    assert s.scales() == dict.fromkeys(TASKS, 1.0)


def test_momentum_update_and_gradient_scales():
    s = DynamicLossScaler(TASKS, alpha=0.7, momentum=0.9).train()
    first, second = np.array([0.8, 0.002, 12.0, 0.3]), np.array([0.4, 0.004, 6.0, 0.2])
    s(_losses(*first))
    losses = _losses(*second, grad=True)
    total = s(losses)
    running = 0.9 * first + 0.1 * second
    np.testing.assert_allclose(s.running.numpy(), running, rtol=1e-5)
    assert total.item() == pytest.approx(float((second * running**-0.7).sum()), rel=1e-5)
    total.backward()  # the scales are constants of the graph: d total / d L_k = m_k ** -alpha
    np.testing.assert_allclose([losses[t].grad.item() for t in TASKS], running**-0.7, rtol=1e-5)


def test_running_means_are_buffers_and_a_reloaded_scaler_continues_identically():
    a = DynamicLossScaler(TASKS, momentum=0.8).train()
    a(_losses(1.0, 0.01, 10.0, 0.5))
    a(_losses(0.7, 0.02, 8.0, 0.4))
    state = a.state_dict()
    assert set(state) == {"running", "started"}
    b = DynamicLossScaler(TASKS, momentum=0.8).train()
    b.load_state_dict(state)
    assert torch.equal(a.running, b.running) and bool(b.started)
    nxt = _losses(0.5, 0.03, 5.0, 0.2)
    assert a(nxt).item() == b(nxt).item()
    assert torch.equal(a.running, b.running)
    fresh = DynamicLossScaler(TASKS, momentum=0.8).train()
    assert fresh(nxt).item() != a(nxt).item()  # without the state the scales start over


def test_eval_mode_freezes_the_running_means():
    s = DynamicLossScaler(TASKS).eval()
    values = [0.8, 0.002, 12.0, 0.3]
    assert s(_losses(*values)).item() == pytest.approx(sum(values), rel=1e-6)  # not started: scale 1
    assert not bool(s.started) and torch.equal(s.running, torch.zeros(4))
    s.train()
    s(_losses(*values))
    before = s.running.clone()
    s.eval()
    total = s(_losses(0.1, 0.1, 0.1, 0.1))
    assert torch.equal(s.running, before)
    assert total.item() == pytest.approx(float((0.1 * before**-0.5).sum()), rel=1e-5)


def test_scaler_errors():
    s = DynamicLossScaler(TASKS)
    with pytest.raises(KeyError, match="cls"):
        s({t: torch.tensor(1.0) for t in TASKS[:3]})
    with pytest.raises(ValueError, match="at least one task"):
        DynamicLossScaler([])
    with pytest.raises(ValueError, match="momentum"):
        DynamicLossScaler(TASKS, momentum=1.0)


def test_a_task_without_samples_neither_adds_nor_moves_its_running_mean():
    """A batch of mirrored scans only has no dense-task samples (None): the total is the other tasks'
    scaled losses, and the absent task's mean starts from its first real loss, not from zero."""
    s = DynamicLossScaler(("seg", "cls"), alpha=1.0).train()
    total = s({"seg": None, "cls": torch.tensor(0.5)})
    assert float(total) == pytest.approx(1.0)  # 0.5 / 0.5
    assert s.scales()["seg"] == 1.0 and s.running[0] == 0
    s({"seg": torch.tensor(2.0), "cls": torch.tensor(0.5)})
    assert float(s.running[0]) == pytest.approx(2.0)  # first real loss, not 0.98 * 0 + 0.02 * 2
    with pytest.raises(ValueError, match="None"):
        s({"seg": None, "cls": None})


def test_loss_scaler_keeps_its_tensors_on_the_buffers_device():
    """On a GPU the scaler's index tensor was made on the default device (CPU) and ``index_copy`` refused it
    (every multitask training on CUDA failed in its first step). A default device other than the
    buffers' one reproduces that here: everything the scaler makes must follow its buffers."""
    s = DynamicLossScaler(("a", "b")).train()
    with torch.device("meta"):
        s({"a": torch.tensor(1.0, device="cpu"), "b": None})
        total = s({"a": torch.tensor(1.0, device="cpu"), "b": torch.tensor(4.0, device="cpu")})
    assert total.device.type == "cpu" and s.running.device.type == "cpu"
    assert s.running.tolist() == pytest.approx([1.0, 4.0])  # "b" seen first here: it starts at its loss
