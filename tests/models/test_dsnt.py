"""DSNT layer and regularisers: exact expectations, divergences, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from partus.models import create_model
from partus.models.dsnt import (
    dsnt,
    gaussian_distribution,
    js_divergence,
    js_regulariser,
    kl_divergence,
    kl_regulariser,
    spatial_softmax,
)


def log_gaussian(cx: float, cy: float, size=(48, 40), sigma=2.0, dtype=torch.float32) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size[0], dtype=dtype), torch.arange(size[1], dtype=dtype), indexing="ij")
    return -((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)


def test_spatial_softmax_normalises_each_map():
    p = spatial_softmax(torch.randn(2, 3, 8, 12) * 5)
    assert p.shape == (2, 3, 8, 12) and (p >= 0).all()
    torch.testing.assert_close(p.sum(dim=(2, 3)), torch.ones(2, 3))


def test_sharp_peak_returns_its_pixel():
    points = [[(12, 7), (0, 0), (23, 15)], [(5, 9), (17, 2), (3, 14)]]  # (x, y) on a 16 x 24 grid
    logits = torch.zeros(2, 3, 16, 24)
    for n, row in enumerate(points):
        for k, (x, y) in enumerate(row):
            logits[n, k, y, x] = 60.0
    xy = dsnt(spatial_softmax(logits))
    assert xy.shape == (2, 3, 2)
    torch.testing.assert_close(xy, torch.tensor(points, dtype=torch.float32), atol=1e-4, rtol=0)


def test_symmetric_gaussian_returns_its_subpixel_centre():
    logits = log_gaussian(10.3, 20.6)[None, None]
    xy = dsnt(spatial_softmax(logits))
    assert torch.allclose(xy[0, 0], torch.tensor([10.3, 20.6]), atol=1e-3, rtol=0)


def test_uniform_map_gives_grid_centre():
    xy = dsnt(spatial_softmax(torch.zeros(1, 1, 6, 9)))
    torch.testing.assert_close(xy[0, 0], torch.tensor([4.0, 2.5]))


def test_gaussian_distribution_is_normalised_and_centred():
    target = torch.tensor([[[10.3, 20.6], [500.0, -300.0]]])  # the second far outside the grid
    q = gaussian_distribution(target, (48, 40), sigma=2.0)
    assert q.shape == (1, 2, 48, 40) and torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(dim=(2, 3)), torch.ones(1, 2))
    assert torch.allclose(dsnt(q)[0, 0], target[0, 0], atol=1e-3)


def test_js_regulariser_zero_at_target_positive_elsewhere():
    target = torch.tensor([[[10.3, 20.6], [30.0, 5.5]]])
    sigma = 2.0
    exact = gaussian_distribution(target, (48, 40), sigma)
    assert js_regulariser(exact, target, sigma).abs().max() < 1e-6
    shifted = gaussian_distribution(target + torch.tensor([3.0, -2.0]), (48, 40), sigma)
    js = js_regulariser(shifted, target, sigma)
    assert js.shape == (1, 2)
    assert (js > 1e-2).all() and (js <= math.log(2) + 1e-6).all()
    # Farther away -> larger, saturating at ln 2 for disjoint distributions.
    far = js_regulariser(gaussian_distribution(target + 15.0, (48, 40), sigma), target, sigma)
    assert (far > js).all() and torch.allclose(far, torch.full_like(far, math.log(2)), atol=1e-3)


def test_js_is_symmetric():
    p = spatial_softmax(torch.randn(2, 3, 10, 12))
    q = spatial_softmax(torch.randn(2, 3, 10, 12))
    torch.testing.assert_close(js_divergence(p, q), js_divergence(q, p))
    # Swapping which landmark is "predicted" and which is the target gives the same value.
    a, b = torch.tensor([[[4.0, 5.0]]]), torch.tensor([[[6.5, 3.0]]])
    ga, gb = gaussian_distribution(a, (10, 12), 1.5), gaussian_distribution(b, (10, 12), 1.5)
    torch.testing.assert_close(js_regulariser(ga, b, 1.5), js_regulariser(gb, a, 1.5))


def test_kl_regulariser_is_target_first():
    target = torch.tensor([[[10.3, 20.6]]])
    exact = gaussian_distribution(target, (48, 40), 2.0)
    assert kl_regulariser(exact, target, 2.0).abs().max() < 1e-5
    probs = spatial_softmax(torch.randn(1, 1, 48, 40))
    kl = kl_regulariser(probs, target, 2.0)
    torch.testing.assert_close(kl, kl_divergence(exact, probs))
    assert (kl > 0).all()
    assert not torch.allclose(kl, kl_divergence(probs, exact))


def test_euclidean_loss_gradients_are_finite():
    torch.manual_seed(0)
    logits = (torch.randn(2, 3, 16, 16) * 30).requires_grad_()  # includes near-one-hot maps
    target = torch.rand(2, 3, 2) * 15
    probs = spatial_softmax(logits)
    loss = torch.linalg.vector_norm(dsnt(probs) - target, dim=-1).mean() + js_regulariser(probs, target, 1.0).mean()
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_kl_gradients_finite_with_underflowing_probabilities():
    logits = torch.zeros(1, 1, 32, 32)
    logits[0, 0, 0, 0] = 200.0  # every other probability underflows to 0
    logits.requires_grad_()
    loss = kl_regulariser(spatial_softmax(logits), torch.tensor([[[20.0, 20.0]]]), 1.0).sum()
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_dsnt_unet_end_to_end():
    model = create_model("dsnt_unet", features=8, output_stride=2).eval()
    with torch.inference_mode():
        xy = dsnt(spatial_softmax(model(torch.randn(2, 1, 64, 64))))
    assert xy.shape == (2, 3, 2)
    assert ((xy >= 0) & (xy <= 31)).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: spatial_softmax(torch.zeros(3, 8, 8)), r"\(N, K, H, W\)"),
        (lambda: dsnt(torch.zeros(8, 8)), r"\(N, K, H, W\)"),
        (lambda: js_regulariser(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 2), 1.0), "target_xy"),
        (lambda: kl_regulariser(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 2), 0.0), "sigma"),
    ],
)
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()
