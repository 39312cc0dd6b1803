"""AdaBN (:func:`partus.train.adapt.recalibrate_bn`): BatchNorm statistics re-estimated on a site's scans,
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
from partus.train.adapt import AdaptConfig, adapt, load_trainable, recalibrate_bn

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.BatchNorm2d(3))


def _images(n: int, gain: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(60 * gain, 25 * gain, (40, 52)), 0, 255).astype(np.uint8) for _ in range(n)]


def test_statistics_are_the_average_of_the_batches_statistics():
    net, images = _net(), _images(12, 1.7)
    conv_w = [p.detach().clone() for p in net.parameters()]
    assert recalibrate_bn(net, images, 32, batch=4) == 2
    # independently: the first layer's input is the preprocessed scans through the first convolution
    x = torch.from_numpy(to_input(np.stack([resize_image(im, 32) for im in images])))
    with torch.no_grad():
        a = net[0](x)
    means = [a[s : s + 4].mean((0, 2, 3)) for s in (0, 4, 8)]
    variances = [a[s : s + 4].transpose(0, 1).reshape(4, -1).var(1, unbiased=True) for s in (0, 4, 8)]
    torch.testing.assert_close(net[1].running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[1].running_var, torch.stack(variances).mean(0), rtol=1e-5, atol=1e-6)
    # weights unchanged, momentum restored, eval mode
    assert all(torch.equal(p, q) for p, q in zip(conv_w, net.parameters(), strict=True))
    assert net[1].momentum == 0.1 and not net.training and not net[1].training


def test_the_site_is_normalised_as_the_training_scans_were():
    """Statistics of dim scans, then bright scans of 'another site': after recalibrating, the first
    layer normalises the bright scans to zero mean and unit variance again; before, it did not."""
    net = _net()
    recalibrate_bn(net, _images(16, 0.6), 32)
    site = _images(16, 2.0, seed=1)
    x = torch.from_numpy(to_input(np.stack([resize_image(im, 32) for im in site])))
    with torch.no_grad():
        before = net[1](net[0](x))
        recalibrate_bn(net, site, 32)
        after = net[1](net[0](x))
    assert before.mean((0, 2, 3)).abs().max() > 0.5
    assert after.mean((0, 2, 3)).abs().max() < 0.05
    assert (after.std((0, 2, 3)) - 1).abs().max() < 0.05


def test_no_images_is_refused():
    with pytest.raises(InputError, match="no scan"):
        recalibrate_bn(_net(), [], 32)


@pytest.mark.slow
def test_adapt_with_statistics_only(tmp_path):
    """``epochs=0``: no fine-tuning; the adapted model differs from the shipped one only by its BatchNorm
    statistics (and refitted plane head), and measures the site."""
    from _helpers import SAMPLE_IMAGES

    from partus.data.records import load_psfhs

    records = load_psfhs(SAMPLE_IMAGES.parent)
    site = [Scan(f"{r.name}_{k}", apply_shift("gain_low", r.image, r.points, index=k).image, r.name)
            for k in range(3) for r in records]  # fmt: skip
    report = adapt(site, tmp_path, config=AdaptConfig(epochs=0, min_kept=2, min_kept_share=0.1))
    assert report["steps"] == 0 and not (tmp_path / "finetune").exists()
    assert "Adapted by: BatchNorm statistics of all 12 scans." in (tmp_path / "adapt_report.md").read_text()
    saved = torch.load(tmp_path / "adapted.ckpt", weights_only=False)["state_dict"]
    adapted = {k[len("model.") :]: v for k, v in saved.items() if k.startswith("model.")}
    _, base = load_trainable()
    changed = {k for k, v in base.items() if not torch.allclose(v.float(), adapted[k].float(), atol=1e-6)}
    stats = ("running_mean", "running_var", "num_batches_tracked")
    assert changed and all(k.endswith(stats) or k.startswith("plane_head.") for k in changed)
    p = Predictor(tmp_path)
    assert p.has_plane and sum(p.predict_one(s.image).measurement.ok for s in site) == report["after"]["measured"]
