"""Heatmap decoding: sub-pixel accuracy on Gaussian peaks, confidence, coordinate mapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partus.decode import decode_heatmaps, fuse_landmarks, peak_mass, to_image_coords


def gaussian(cx: float, cy: float, shape=(64, 48), sigma=2.0, height=1.0) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return height * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))


centre = st.tuples(st.floats(5, 42), st.floats(5, 58))


@settings(max_examples=50, deadline=None)
@given(centre)
def test_quadratic_and_dark_recover_gaussian_centres(c):
    hm = gaussian(*c)[None]
    for method, tol in (("quadratic", 1e-6), ("dark", 0.05)):
        xy, conf = decode_heatmaps(hm, method=method, sigma=2.0)
        assert np.abs(xy[0] - c).max() < tol, method
    argmax, _ = decode_heatmaps(hm, method="argmax")
    assert np.abs(argmax[0] - np.round(c)).max() <= 0.5 + 1e-9


def test_dark_beats_argmax_on_noisy_peaks():
    """Over random sub-pixel centres with noise, DARK is ~10x closer than argmax (0.05 vs 0.5 px)."""
    rng = np.random.default_rng(0)
    centres = rng.uniform([5, 5], [42, 58], size=(200, 2))
    hms = np.stack([np.clip(gaussian(*c) + rng.normal(0, 0.05, (64, 48)), 1e-4, None) for c in centres])
    err = {}
    for method in ("argmax", "quadratic", "dark"):
        xy, _ = decode_heatmaps(hms, method=method, sigma=2.0)
        err[method] = np.linalg.norm(xy - centres, axis=1).mean()
    assert err["argmax"] > 0.3
    assert err["dark"] < 0.5 * err["argmax"]


def test_soft_argmax_window_and_whole_map():
    hm = gaussian(20.25, 30.5)[None]
    for window in (0, 6):
        xy, _ = decode_heatmaps(hm, method="soft_argmax", window=window)
        assert np.abs(xy[0] - (20.25, 30.5)).max() < 0.02


def test_batched_shapes_and_confidence():
    hm = np.stack([np.stack([gaussian(10, 10, height=0.9), gaussian(30, 40, height=0.2)])] * 3)  # (3, 2, H, W)
    xy, conf = decode_heatmaps(hm)
    assert xy.shape == (3, 2, 2) and conf.shape == (3, 2)
    np.testing.assert_allclose(conf[:, 0], 0.9)
    np.testing.assert_allclose(conf[:, 1], 0.2)


def test_peak_on_the_border_stays_in_range():
    hm = gaussian(0, 0)[None]
    for method in ("quadratic", "dark"):
        xy, _ = decode_heatmaps(hm, method=method)
        assert np.all(xy[0] >= -0.5) and np.all(xy[0] <= 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"heatmaps": np.zeros((4, 4))}, r"shape \(K, H, W\) or \(N, K, H, W\), got \(4, 4\)"),
        ({"heatmaps": np.full((1, 4, 4), np.nan)}, "finite"),
        ({"heatmaps": np.zeros((1, 4, 4)), "method": "peak"}, "method must be one of 'argmax', 'quadratic'"),
        ({"heatmaps": np.zeros((1, 4, 4)), "sigma": 0}, "sigma must be > 0"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        decode_heatmaps(**kwargs)


def test_to_image_coords_aligns_pixel_edges():
    # a 4x smaller heatmap: its pixel 0 covers image pixels 0..3, centre 1.5
    np.testing.assert_allclose(to_image_coords([[0, 0]], (64, 64), (256, 256)), [[1.5, 1.5]])
    # identity and anisotropic resize: heatmap 128x64 of a 512x256 (H x W) image -> s = 4 in both axes
    np.testing.assert_allclose(to_image_coords([[3.0, 7.0]], (50, 50), (50, 50)), [[3.0, 7.0]])
    np.testing.assert_allclose(to_image_coords([[10, 20]], (128, 64), (512, 256)), [[41.5, 81.5]])
    with pytest.raises(ValueError, match="sizes must be positive"):
        to_image_coords([[1, 1]], (0, 64), (256, 256))


@settings(max_examples=50, deadline=None)
@given(st.tuples(st.floats(-1, 300), st.floats(-1, 300)), st.integers(16, 512), st.integers(16, 512))
def test_grid_and_image_coords_are_inverse(pt, gh, gw):
    from partus.decode import to_grid_coords

    back = to_image_coords(to_grid_coords([pt], (256, 320), (gh, gw)), (gh, gw), (256, 320))
    np.testing.assert_allclose(back, [pt], atol=1e-9)


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_upsampled_labels_equal_per_channel_resize_then_argmax(channels):
    """The channels-last fast path gives exactly cv2.resize per channel + argmax, ties to the first class."""
    import cv2

    from partus.decode import upsample_labels

    probs = np.random.default_rng(channels).random((channels, 40, 56)).astype(np.float32)
    probs[:, :6, :6] = 0.5  # ties
    ref = np.stack([cv2.resize(c, (112, 80), interpolation=cv2.INTER_LINEAR) for c in probs]).argmax(0)
    got = upsample_labels(probs, (80, 112))
    assert got.dtype == np.uint8 and got.shape == (80, 112)
    assert np.array_equal(got, ref)
    assert np.array_equal(upsample_labels(probs, (40, 56)), probs.argmax(0))


def test_fused_landmarks_are_the_weighted_mean_without_missing_estimates():
    a = np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]])
    b = np.array([[3.0, 3.0], [np.nan, np.nan], [7.0, 1.0]])
    got = fuse_landmarks([a, b], [0.5, 1.0])
    np.testing.assert_allclose(got, [[2.0, 2.0], [2.0, 2.0], [6.0, 2.0]])  # (0.5 a + b) / 1.5; b misses PS2
    np.testing.assert_allclose(fuse_landmarks([a, b]), [[1.5, 1.5], [2.0, 2.0], [5.5, 2.5]])  # eq. 4
    assert np.isnan(fuse_landmarks([b, b])[1]).all()  # no estimate: stays missing
    batched = fuse_landmarks(np.stack([np.stack([a, a]), np.stack([b, b])]), [0.5, 1.0])
    np.testing.assert_allclose(batched, [got, got])
    for bad in ([1.0], [0.0, 0.0], [-1.0, 2.0], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="one finite, non-negative weight per estimate"):
            fuse_landmarks([a, b], bad)


def test_fused_landmarks_weighted_median_against_a_sorted_reference():
    rng = np.random.default_rng(5)
    est = rng.normal(size=(5, 3, 2)) * 10
    est[1, 2] = np.nan  # estimate 1 has no FH1
    w = np.array([0.5, 1.0, 2.0, 1.0, 0.7])
    got = fuse_landmarks(est, w, method="median")
    for k in range(3):
        for c in range(2):
            v, ww = est[:, k, c], w.copy()
            keep = np.isfinite(v)
            v, ww = v[keep], ww[keep]
            o = np.argsort(v)
            cum = np.cumsum(ww[o])
            i = int(np.searchsorted(cum, cum[-1] / 2))  # first index whose cumulative weight reaches half
            ref = (v[o][i] + v[o][i + 1]) / 2 if np.isclose(cum[i], cum[-1] / 2) else v[o][i]
            assert got[k, c] == pytest.approx(ref)
    a = np.zeros((3, 2))
    three = [a, a + 1, a + 50]  # one far-off estimate out of three does not move the median
    np.testing.assert_allclose(fuse_landmarks(three, method="median"), a + 1)
    np.testing.assert_allclose(fuse_landmarks(three[:2], method="median"), a + 0.5)  # a tie: the mean
    np.testing.assert_allclose(fuse_landmarks(three, [0.5, 1, 1], method="median"), a + 1)
    assert np.isnan(fuse_landmarks([a * np.nan, a * np.nan], method="median")).all()
    batched = fuse_landmarks(np.stack([np.stack(three)] * 2, axis=1), method="median")
    np.testing.assert_allclose(batched, [a + 1, a + 1])
    with pytest.raises(ValueError, match="'mean' or 'median'"):
        fuse_landmarks(three, method="mode")


def test_peak_mass_sums_the_square_around_each_peak_clipped_at_the_border():
    maps = np.zeros((2, 8, 8))
    maps[0, 4, 4], maps[0, 4, 6], maps[0, 7, 7] = 0.5, 0.2, 0.3  # peak (4, 4): (6, 4) is inside, (7, 7) is not
    maps[1, 0, 0], maps[1, 2, 2], maps[1, 3, 3] = 0.6, 0.3, 0.1  # peak on the corner: its square is 3 x 3
    np.testing.assert_allclose(peak_mass(maps), [0.7, 0.9])
    np.testing.assert_allclose(peak_mass(maps, radius=0), [0.5, 0.6])
    np.testing.assert_allclose(peak_mass(np.full((1, 10, 10), 0.01)), [0.09])  # flat: the first cell, a corner
