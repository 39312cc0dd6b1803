"""AdaBN (:func:`partus.train.adabn.recalibrate_bn`): BatchNorm statistics re-estimated on a site's scans,
checked against statistics computed independently, and ``partus adapt`` with statistics only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from partus.data.shift import apply_shift
from partus.data.unlabelled import Scan
from partus.errors import InputError
from partus.predict import Predictor
from partus.preprocess import resize_image, to_input
from partus.train.adabn import recalibrate_bn, recalibrate_refiner_bn
from partus.train.adapt import AdaptConfig, adapt, load_trainable

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(4, 3, 3),
                         nn.BatchNorm2d(3))  # fmt: skip


def _images(n: int, gain: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(60 * gain, 25 * gain, (40, 52)), 0, 255).astype(np.uint8) for _ in range(n)]


def _inputs(images) -> torch.Tensor:
    return torch.from_numpy(to_input(np.stack([resize_image(im, 32) for im in images])))


def _batch_stats(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return a.mean((0, 2, 3)), a.transpose(0, 1).reshape(a.shape[1], -1).var(1, unbiased=True)


@pytest.mark.parametrize("n", [12, 11])  # three batches of 4; batches of 4, 4, 3
def test_statistics_are_the_size_weighted_average_of_the_batches(n):
    net, images = _net(), _images(n, 1.7)
    weights = [p.detach().clone() for p in net.parameters()]
    assert recalibrate_bn(net, images, 32, batch=4) == n
    # independently, per batch of np.array_split: during the pass the first BatchNorm normalises with the
    # batch's own statistics (as in training), dropout is off
    x = _inputs(images)
    chunks = np.array_split(np.arange(n), 3)
    bn1 = net[1]
    with torch.no_grad():
        first = [net[0](x[c]) for c in chunks]
        normed = [nn.functional.batch_norm(a, None, None, bn1.weight, bn1.bias, True, 0.0, bn1.eps) for a in first]
        second = [net[4](net[2](a)) for a in normed]
    sizes = torch.tensor([len(c) for c in chunks], dtype=torch.float32)[:, None]
    for bn, acts in ((net[1], first), (net[5], second)):
        means, variances = zip(*(_batch_stats(a) for a in acts), strict=True)
        torch.testing.assert_close(bn.running_mean, (torch.stack(means) * sizes).sum(0) / n, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var, (torch.stack(variances) * sizes).sum(0) / n, rtol=1e-5, atol=1e-6)
    # weights unchanged, momentum restored, eval mode everywhere
    assert all(torch.equal(p, q) for p, q in zip(weights, net.parameters(), strict=True))
    assert net[1].momentum == 0.1 and net[5].momentum == 0.1 and not any(m.training for m in net.modules())


def test_the_site_is_normalised_as_the_training_scans_were():
    """Statistics of dim scans, then bright scans of 'another site': after recalibrating, the first
    layer normalises the bright scans to zero mean and unit variance again; before, it did not."""
    net = _net()
    recalibrate_bn(net, _images(16, 0.6), 32)
    site = _images(48, 2.0, seed=1)
    x = _inputs(site)
    with torch.no_grad():
        before = net[1](net[0](x))
        recalibrate_bn(net, site, 32)  # three batches
        after = net[1](net[0](x))
    assert before.mean((0, 2, 3)).abs().max() > 0.5
    assert after.mean((0, 2, 3)).abs().max() < 0.05
    assert (after.std((0, 2, 3)) - 1).abs().max() < 0.05


def test_a_prior_keeps_a_share_of_the_old_statistics_and_a_prefix_picks_the_layers():
    """``prior=p``: p x the old statistics + (1 - p) x the site's; ``prefix``: only the layers so named move."""
    site = _images(8, 2.0, seed=1)
    ref = _net()
    recalibrate_bn(ref, _images(8, 0.6), 32)
    old = [(m.running_mean.clone(), m.running_var.clone()) for m in (ref[1], ref[5])]
    full, mixed, first = _net(), _net(), _net()
    for net in (full, mixed, first):
        net.load_state_dict(ref.state_dict())
    recalibrate_bn(full, site, 32)
    recalibrate_bn(mixed, site, 32, prior=0.25)
    recalibrate_bn(first, site, 32, prefix="1")  # nn.Sequential names its layers "0", "1", ...
    for k, (mean, var) in zip((1, 5), old, strict=True):
        torch.testing.assert_close(mixed[k].running_mean, 0.25 * mean + 0.75 * full[k].running_mean)
        torch.testing.assert_close(mixed[k].running_var, 0.25 * var + 0.75 * full[k].running_var)
    torch.testing.assert_close(first[1].running_mean, full[1].running_mean)  # the first layer sees the same input
    torch.testing.assert_close(first[5].running_mean, old[1][0])  # the second is left as it was
    assert not torch.allclose(full[5].running_mean, old[1][0])
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        recalibrate_bn(_net(), site, 32, prefix="decoder")
    with pytest.raises(ValueError, match="prior"):
        recalibrate_bn(_net(), site, 32, prior=1.0)


def test_blank_and_colour_images():
    """Colour frames are used as gray (as at inference); blank frames are skipped; none usable: refused."""
    net, images = _net(), _images(4, 1.0)
    colour = [np.repeat(im[..., None], 3, axis=2) for im in images]
    assert recalibrate_bn(net, [*colour, np.full((40, 52), 7, np.uint8)], 32) == 4
    mean = net[1].running_mean.clone()
    recalibrate_bn(net, images, 32)
    torch.testing.assert_close(net[1].running_mean, mean)
    with pytest.raises(InputError, match="no usable scan"):
        recalibrate_bn(_net(), [np.zeros((40, 52), np.uint8)], 32)
    with pytest.raises(InputError, match="no usable scan"):
        recalibrate_bn(_net(), [], 32)


def test_refiner_statistics_come_from_the_windows_around_the_symphysis():
    """The refiner's first BatchNorm, after recalibration, holds the mean of its first convolution over the
    96-px windows centred on each scan's PS1/PS2 midpoint (cut here by hand) of the scan at 256 px; a scan
    without points gives no window; none at all is refused."""
    import cv2

    from partus.config import RefineConfig
    from partus.train.refine import build_refiner

    rc = RefineConfig(features=4, work=64, crop=32, refines=[0, 1])
    torch.manual_seed(0)
    net = build_refiner(rc)
    rng = np.random.default_rng(3)
    grays = [rng.integers(0, 255, (80, 100), dtype=np.uint8) for _ in range(3)]
    points = [np.array([[40.0, 30.0], [60.0, 34.0], [50.0, 60.0]]), np.array([[20.0, 50.0], [30.0, 40.0], [0, 0]]),
              np.full((3, 2), np.nan)]  # fmt: skip
    assert recalibrate_refiner_bn(net, rc, grays, points) == 2
    crops = []
    for g, p in zip(grays[:2], points[:2], strict=True):
        work = cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA)
        mid = (p[:2] * [64 / 100, 64 / 80] + [0.5 * 64 / 100 - 0.5, 0.5 * 64 / 80 - 0.5]).mean(0)
        m = np.float32([[1, 0, 15.5 - mid[0]], [0, 1, 15.5 - mid[1]]])
        crops.append(cv2.warpAffine(work, m, (32, 32), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
    x = torch.from_numpy(np.stack(crops).astype(np.float32)[:, None] / 255)
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        torch.testing.assert_close(bn.running_mean, conv(x).mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert not net.training
    with pytest.raises(InputError, match="no scan with symphysis landmarks"):
        recalibrate_refiner_bn(net, rc, grays[2:], points[2:])


def test_pretraining_without_fine_tuning_is_refused(tmp_path):
    scans = [Scan("a", _images(1, 1.0)[0], "a")]
    with pytest.raises(InputError, match="needs fine-tuning"):
        adapt(scans, tmp_path, config=AdaptConfig(pretrain_minutes=1.0))
    with pytest.raises(InputError, match="needs bn_stats"):
        adapt(scans, tmp_path, config=AdaptConfig(bn_stats=False, tent_epochs=1))


@pytest.mark.slow
@pytest.mark.parametrize("tent", [0, 2])
def test_adapt_with_statistics_only(tmp_path, tent):
    """``epochs=0`` (the default): no fine-tuning; the adapted model differs from the shipped one only by
    its BatchNorm statistics (with ``tent_epochs``, the default 2: and the BatchNorm scales and shifts) and
    refitted plane head, and measures the site."""
    from _helpers import SAMPLE_IMAGES

    from partus.data.records import load_psfhs

    records = load_psfhs(SAMPLE_IMAGES.parent)
    site = [Scan(f"{r.name}_{k}", apply_shift("gain_low", r.image, r.points, index=k).image, r.name)
            for k in range(3) for r in records]  # fmt: skip
    report = adapt(site, tmp_path, config=AdaptConfig(min_kept=2, min_kept_share=0.1, tent_epochs=tent))
    assert report["steps"] == 0 and not (tmp_path / "finetune").exists()
    text = (tmp_path / "adapt_report.md").read_text()
    tent_words = "BatchNorm scales fitted by entropy minimisation (2 passes), " if tent else ""
    assert f"Adapted by: {tent_words}BatchNorm statistics of the 12 scans, a refitted standard-plane head." in text
    saved = torch.load(tmp_path / "adapted.ckpt", weights_only=False)["state_dict"]
    adapted = {k[len("model.") :]: v for k, v in saved.items() if k.startswith("model.")}
    _, base = load_trainable()
    changed = {k for k, v in base.items() if not torch.allclose(v.float(), adapted[k].float(), atol=1e-6)}
    stats = ("running_mean", "running_var", "num_batches_tracked")
    bn = {k.rsplit(".", 1)[0] for k in base if k.endswith("running_var")}
    affine = {k for k in changed if k.rsplit(".", 1)[0] in bn and k.endswith((".weight", ".bias"))}
    assert all(k.endswith(stats) or k.startswith("plane_head.") or k in affine for k in changed)
    assert sum(k.endswith("running_var") for k in changed) > 10  # the statistics really moved
    assert (len(affine) > 10) == bool(tent)  # the scales and shifts moved exactly when Tent ran
    p = Predictor(tmp_path)
    assert p.has_plane and sum(p.predict_one(s.image).measurement.ok for s in site) == report["after"]["measured"]


def test_refiner_statistics_need_its_trainable_weights(tmp_path):
    """The bundled network's refiner has no trainable weights beside it: asking for its statistics is refused
    before any work."""
    from partus.predict import DEFAULT_MODELS
    from partus.refine import refiner_path
    from partus.train.adapt import TRAINABLE, trainable_refiner

    if not refiner_path(DEFAULT_MODELS[0]).is_file() or trainable_refiner(TRAINABLE).is_file():
        pytest.skip("needs a bundled refiner without trainable weights")
    scans = [Scan("a", _images(1, 1.0)[0], "a")]
    with pytest.raises(InputError, match="trainable weights"):
        adapt(scans, tmp_path, config=AdaptConfig(refiner_stats=True))


@pytest.mark.slow
def test_adapt_re_estimates_the_refiners_statistics(tmp_path):
    """With ``refiner_stats`` and a trainable refiner beside the base, the adapted refiner is the base's with
    only its BatchNorm statistics changed, exported beside the adapted network and used by it."""
    import shutil

    from _helpers import SAMPLE_IMAGES

    from partus.config import RefineConfig
    from partus.data.records import load_psfhs
    from partus.predict import DEFAULT_MODELS
    from partus.refine import refiner_path
    from partus.train.adapt import TRAINABLE, trainable_refiner
    from partus.train.refine import build_refiner, load_refiner, save_refiner

    if not refiner_path(DEFAULT_MODELS[0]).is_file():
        pytest.skip("the bundled network has no refiner")
    base = tmp_path / "base.pt"
    shutil.copyfile(TRAINABLE, base)
    rc = RefineConfig(epochs=1, features=4, refines=[0, 1], blend=[1.0, 0.5])
    torch.manual_seed(0)
    save_refiner(build_refiner(rc), rc, trainable_refiner(base), "multitask")
    records = load_psfhs(SAMPLE_IMAGES.parent)
    site = [Scan(f"{r.name}_{k}", apply_shift("gain_low", r.image, r.points, index=k).image, r.name)
            for k in range(2) for r in records]  # fmt: skip
    out = tmp_path / "out"
    report = adapt(site, out, base=base, base_onnx=DEFAULT_MODELS[0],
                   config=AdaptConfig(min_kept=2, min_kept_share=0.1, refiner_stats=True))  # fmt: skip
    assert report["refiner_windows"] == len(site)  # every sample scan gets points
    before, _, _ = load_refiner(trainable_refiner(base))
    after, _, _ = load_refiner(out / "refiner.pt")
    b, a = before.state_dict(), after.state_dict()
    changed = {k for k in b if not torch.allclose(b[k].float(), a[k].float(), atol=1e-7)}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    assert refiner_path(out / "multitask.onnx").read_bytes() != refiner_path(DEFAULT_MODELS[0]).read_bytes()
    assert Predictor(out).models[0].refiner is not None
