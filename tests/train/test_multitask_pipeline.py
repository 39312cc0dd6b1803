"""Multi-task model end to end: training on phantoms, ONNX export, and orientation-aware inference.

Two exported models are used: a tiny ``multitask_net`` trained for one epoch (its segmentation is not yet
measurable, so it checks the plumbing: metadata, outputs, checkpointed loss scales, the orientation
report) and a hand-built rule "multitask" ONNX whose segmentation thresholds the gray levels of a
label-coded phantom, so that landmarks exist and the canonicalisation can be checked to 1e-6 px.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from partus.config import load_config
from partus.data.records import load_phantoms
from partus.data.shift import mirror
from partus.errors import InputError
from partus.export import export_onnx, read_metadata
from partus.predict import Predictor
from partus.quality import DEFAULT_LIMITS
from partus.train.fit import fit

HEADS = {"seg": "segmentation", "heatmap": "heatmap", "dsnt": "dsnt"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- trained multitask_net
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multitask")
    cfg = load_config(None, [
        "data.source=phantoms", "data.n_phantoms=16", "data.phantom_size=64", "data.input_size=64",
        "data.orientation_p=0.5", "model.name=multitask_net", "model.kwargs={features: 8}",
        "model.encoder_weights=null", "train.epochs=1", "train.batch_size=8", "train.threads=1",
    ])  # fmt: skip
    res = fit(cfg, tmp / "run", progress=False)
    torch.set_num_threads(1)  # fit sets the thread count of the process
    meta = export_onnx(res.checkpoint, tmp / "m.onnx")
    return res, tmp / "m.onnx", meta


@pytest.fixture(scope="module")
def image():
    return load_phantoms(1, seed=11, size=64)[0].image


@pytest.mark.slow
def test_export_describes_the_heads(trained):
    res, path, meta = trained
    stored = read_metadata(path)
    assert stored["kind"] == "multitask" and stored["model"] == "multitask_net"
    assert stored["heads"] == HEADS and stored["cls_names"] == ["mirrored"]
    assert meta["max_abs_diff"] < 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["seg", "heatmap", "dsnt", "cls"]
    x = np.random.default_rng(0).random((2, 1, 64, 96), dtype=np.float32)
    outs = dict(zip(["seg", "heatmap", "dsnt", "cls"], session.run(None, {"image": x}), strict=True))
    for name in HEADS:
        assert outs[name].shape == (2, 3, 64, 96)
    assert outs["cls"].shape == (2, 1)
    model = res.module.model.eval()
    with torch.inference_mode():
        ref = model(torch.from_numpy(x))
    for name, got in outs.items():
        np.testing.assert_allclose(got, ref[name].numpy(), atol=1e-4)


@pytest.mark.slow
def test_checkpoint_keeps_the_dynamic_loss_scales(trained):
    res, _, _ = trained
    state = torch.load(res.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert bool(state["scaler.started"])
    running = state["scaler.running"]
    assert running.shape == (4,) and torch.isfinite(running).all() and (running > 0).all()
    assert torch.equal(res.module.scaler.running, running)


@pytest.mark.slow
def test_given_orientation_is_reported_and_canonicalised(trained, image):
    _, path, _ = trained
    p = Predictor(path, threads=1)
    a = p.predict([image], orientation="standard")[0]
    b = p.predict([mirror(image, np.zeros((3, 2))).image], orientation="mirrored")[0]
    ea, eb = a.measurement.extras["orientation"], b.measurement.extras["orientation"]
    assert ea["display"] == "standard" and eb["display"] == "mirrored"
    assert ea["decided_by"] == eb["decided_by"] == "given"
    assert 0.0 <= ea["p_mirrored"] <= 1.0 and 0.0 <= eb["p_mirrored"] <= 1.0
    assert a.measurement.orientation == "standard" and b.measurement.orientation == "mirrored"
    _assert_mirrored(a, b, image.shape[1])


@pytest.mark.slow
def test_auto_orientation_uses_the_head(trained, image):
    res, path, _ = trained
    p = Predictor(path, threads=1)
    m = p.predict([image], orientation="auto")[0].measurement
    info = m.extras["orientation"]
    assert info["decided_by"] == "orientation head"
    assert 0.0 <= info["p_mirrored"] <= 1.0
    assert info["display"] == ("mirrored" if info["p_mirrored"] > DEFAULT_LIMITS.mirror_threshold else "standard")
    with torch.inference_mode():  # the ONNX head agrees with the torch model
        x = torch.from_numpy(image[None, None].astype(np.float32) / 255)
        ref = torch.sigmoid(res.module.model.eval()(x)["cls"][0, 0]).item()
    assert info["p_mirrored"] == pytest.approx(ref, abs=2e-4)


@pytest.mark.slow
def test_flip_tta_is_refused_for_multitask_models(trained):
    _, path, _ = trained
    with pytest.raises(InputError, match="flip TTA is not defined for multitask"):
        Predictor(path, tta_flip=True)


# --------------------------------------------------------------------------- rule-based multitask ONNX
class _RuleNet(nn.Module):
    """Segmentation by gray level (255: PS, ~128: FH), left-right asymmetric landmark maps (so measuring
    the wrong display gives other landmarks) and an orientation logit from where the symphysis is."""

    def __init__(self, size: int = 64):
        super().__init__()
        self.register_buffer("ramp", torch.linspace(0, 1, size).expand(1, 1, size, size).clone())

    def forward(self, x):
        ps = (x > 0.9).float()
        fh = ((x > 0.4) & (x < 0.6)).float()
        seg = torch.cat([torch.full_like(x, 10.0), 20 * ps, 20 * fh], 1)
        sm = F.avg_pool2d(x, 5, stride=1, padding=2)
        heat = torch.cat([12 * sm * self.ramp - 6, 12 * sm * (1 - self.ramp) - 6, 10 * sm - 5], 1)
        dsnt = torch.cat([6 * sm + 2 * self.ramp, 6 * sm, 4 * sm * self.ramp], 1)
        cls = 2000 * (ps * (self.ramp - 0.5)).mean(dim=(2, 3))  # PS on the right: mirrored
        return seg, heat, dsnt, cls


@pytest.fixture(scope="module")
def rule_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("rule") / "rule.onnx"
    names = ["seg", "heatmap", "dsnt", "cls"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_RuleNet().eval(), torch.rand(1, 1, 64, 64), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=names,
                          dynamic_axes={n: {0: "batch"} for n in ["image", *names]})  # fmt: skip
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key = "partus"
    entry.value = json.dumps({
        "format": 1, "config": "rule", "model": "rule", "kind": "multitask", "output_stride": 1,
        "input_size": 64, "landmarks": ["PS1", "PS2", "FH1"], "decode": "dark", "sigma": 2.0,
        "flip_policy": "official", "heads": HEADS, "cls_names": ["mirrored"],
    })  # fmt: skip
    onnx.save(proto, str(path))
    return path


def _coded(size: int = 64, seed: int = 9) -> np.ndarray:
    """A phantom drawn by label: PS 255, FH 128, background speckle 20..59."""
    r = load_phantoms(1, seed=seed, size=size)[0]
    img = np.random.default_rng(seed).integers(20, 60, r.mask.shape).astype(np.uint8)
    img[r.mask == 1], img[r.mask == 2] = 255, 128
    return img


def _assert_mirrored(a, b, width: int) -> None:
    """``b`` (the mirrored scan) is ``a`` (the scan) with every landmark's x mirrored, all else equal."""
    ma, mb = a.measurement, b.measurement
    assert (ma.landmarks is None) == (mb.landmarks is None)
    if ma.landmarks is not None:
        pa, pb = ma.landmarks.to_array(), mb.landmarks.to_array()
        np.testing.assert_allclose(pb[:, 0], (width - 1) - pa[:, 0], atol=1e-6)
        np.testing.assert_allclose(pb[:, 1], pa[:, 1], atol=1e-6)
    assert ma.aop == pytest.approx(mb.aop, abs=1e-6) or (math.isnan(ma.aop) and math.isnan(mb.aop))
    assert ma.hsd == pytest.approx(mb.hsd, abs=1e-6) or (math.isnan(ma.hsd) and math.isnan(mb.hsd))
    assert (ma.status, ma.reason) == (mb.status, mb.reason)
    assert ma.extras["confidence"] == mb.extras["confidence"]
    assert ma.extras.get("member_confidence") == mb.extras.get("member_confidence")
    assert (a.label_map is None) == (b.label_map is None)
    if a.label_map is not None:
        assert np.array_equal(b.label_map, np.fliplr(a.label_map))


@pytest.mark.parametrize("size", [64, 96])
def test_mirrored_display_gives_the_mirrored_landmarks_exactly(rule_model, size):
    img = _coded(size)
    p = Predictor(rule_model, threads=1)
    a = p.predict([img], orientation="standard")[0]
    b = p.predict([mirror(img, np.zeros((3, 2))).image], orientation="mirrored")[0]
    assert a.measurement.landmarks is not None and np.isfinite(a.measurement.aop)
    _assert_mirrored(a, b, size)
    assert b.measurement.extras["orientation"]["decided_by"] == "given"
    # The orientation matters: the same scan measured as a mirrored display gives other landmarks.
    c = p.predict([img], orientation="mirrored")[0].measurement
    assert np.abs(c.landmarks.to_array() - a.measurement.landmarks.to_array()).max() > 1.0


def test_auto_orientation_follows_the_head(rule_model):
    img = _coded()
    flipped = mirror(img, np.zeros((3, 2))).image
    p = Predictor(rule_model, threads=1)
    auto = p.predict([img, flipped], orientation="auto")
    given = [p.predict([img], orientation="standard")[0], p.predict([flipped], orientation="mirrored")[0]]
    info = [r.measurement.extras["orientation"] for r in auto]
    assert [i["display"] for i in info] == ["standard", "mirrored"]
    assert all(i["decided_by"] == "orientation head" for i in info)
    t = DEFAULT_LIMITS.mirror_threshold
    assert info[0]["p_mirrored"] < t < info[1]["p_mirrored"] and all(0 <= i["p_mirrored"] <= 1 for i in info)
    for got, ref in zip(auto, given, strict=True):
        np.testing.assert_allclose(got.measurement.landmarks.to_array(), ref.measurement.landmarks.to_array(),
                                   atol=1e-9)  # fmt: skip
    _assert_mirrored(auto[0], auto[1], img.shape[1])


def test_rule_model_refuses_flip_tta(rule_model):
    with pytest.raises(InputError, match="tta_flip"):
        Predictor(rule_model, tta_flip=True)


@pytest.mark.slow
def test_a_plane_head_adds_standard_plane_and_changes_nothing_else(trained, tmp_path):
    from typer.testing import CliRunner

    from partus.cli import EXIT_OK, app
    from partus.data.planes import non_standard
    from partus.train.module import LandmarkModule
    from partus.train.plane import plane_set, train_plane_head

    res, old_onnx, _ = trained
    records = load_phantoms(12, seed=5, size=64)
    ckpt, m = train_plane_head(res.checkpoint, tmp_path / "plane.ckpt", records=records, hidden=8, steps=300)
    assert m["n"] == len(plane_set(records).images) and m["auc"] > 0.7  # learns (a 1-epoch trunk: weak features)
    model = LandmarkModule.load_from_checkpoint(ckpt, map_location="cpu").model.eval()
    assert model.cls_names == ("mirrored", "standard_plane")
    meta = export_onnx(ckpt, tmp_path / "plane.onnx")
    assert meta["cls_names"] == ["mirrored", "standard_plane"]
    rec = records[0]
    images = [rec.image, non_standard("noise_fan", rec.image, rec.points, rec.mask)]
    x = np.stack([np.asarray(im, np.float32)[None] / 255.0 for im in images])
    old = dict(zip([o.name for o in ort.InferenceSession(str(old_onnx)).get_outputs()],
                   ort.InferenceSession(str(old_onnx)).run(None, {"image": x}), strict=True))  # fmt: skip
    sess = ort.InferenceSession(str(tmp_path / "plane.onnx"))
    new = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x}), strict=True))
    for name in ("seg", "heatmap", "dsnt"):
        assert np.array_equal(old[name], new[name]), name  # the dense heads are untouched, bit for bit
    assert np.array_equal(old["cls"][:, 0], new["cls"][:, 0]) and new["cls"].shape == (2, 2)
    pred = Predictor(tmp_path / "plane.onnx")
    assert pred.has_plane and "standard_plane" in pred.predict([rec.image])[0].measurement.extras
    res2 = CliRunner().invoke(app, ["train-plane", str(res.checkpoint), "--out", str(tmp_path / "cli.ckpt"),
                                    "--steps", "5", "--hidden", "4"])  # fmt: skip
    assert res2.exit_code != EXIT_OK and "--data" in res2.output  # needs labelled data
