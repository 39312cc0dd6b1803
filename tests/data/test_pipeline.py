"""Data pipeline: grouped folds, targets, augmentation alignment, the explicit flip, deterministic epochs."""

from __future__ import annotations

import numpy as np
import pytest

from partus.data.augment import AugmentConfig, apply_augment, build_augment, hflip, random_fan
from partus.data.dataset import EpochSampler, LandmarkDataset
from partus.data.records import load_phantoms
from partus.data.splits import group_kfold
from partus.data.targets import gaussian_heatmaps, perturb_points
from partus.decode import decode_heatmaps, to_grid_coords
from partus.geometry import landmarks_from_mask


@pytest.fixture(scope="module")
def records():
    return load_phantoms(6, seed=1, size=128)


def test_group_kfold_keeps_groups_together_and_balances():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 60, 400).tolist() + [None] * 20
    folds = group_kfold(groups, 5, seed=3)
    for g in set(groups) - {None}:
        assert len({folds[i] for i, x in enumerate(groups) if x == g}) == 1
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= max(np.bincount(rng.integers(0, 60, 400)))  # within one group size
    np.testing.assert_array_equal(folds, group_kfold(groups, 5, seed=3))
    with pytest.raises(ValueError, match="exceeds the number of groups"):
        group_kfold(["a", "a", "b"], 3)


def test_heatmap_targets_decode_back_to_their_points():
    pts = np.array([[10.25, 20.5], [40.0, 3.75], [np.nan, np.nan]])
    hm = gaussian_heatmaps(pts, (48, 64), sigma=2.0)
    assert hm.shape == (3, 48, 64) and hm.dtype == np.float32 and hm[2].max() == 0
    xy, conf = decode_heatmaps(hm[:2], method="quadratic")
    np.testing.assert_allclose(xy, pts[:2], atol=1e-3)
    noisy = perturb_points(pts[:2], 1.0, np.random.default_rng(0))
    assert 0 < np.abs(noisy - pts[:2]).max() < 5


def test_affine_augmentation_moves_points_with_the_image():
    """A bright dot drawn at each landmark is still under the transformed landmark after augmentation."""
    img = np.zeros((96, 96), np.uint8)
    pts = np.array([[30.0, 40.0], [60.0, 25.0], [70.0, 70.0]])
    yy, xx = np.mgrid[0:96, 0:96]
    for x, y in pts:
        img = np.maximum(img, (255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8)).astype(np.uint8))
    params = AugmentConfig(p_affine=1.0, rotate_deg=15, scale=0.1, translate=0.05, p_color=0, p_gamma=0, p_blur=0,
                           p_speckle=0)  # fmt: skip
    compose = build_augment(params)
    for seed in range(5):
        out, moved, _ = apply_augment(compose, img, pts, None, seed)
        for x, y in moved:
            xi, yi = int(round(x)), int(round(y))
            win = out[yi - 3 : yi + 4, xi - 3 : xi + 4].astype(float)
            yy2, xx2 = np.mgrid[yi - 3 : yi + 4, xi - 3 : xi + 4]
            centroid = np.array([(win * xx2).sum(), (win * yy2).sum()]) / win.sum()
            assert np.linalg.norm(centroid - (x, y)) < 0.5


def test_flip_policies(records):
    r = records[0]
    img, pts, mask = hflip(r.image, r.points, r.mask, "anatomical")
    w = r.image.shape[1]
    np.testing.assert_allclose(pts[:, 0], w - 1 - r.points[:, 0])  # identity kept, x mirrored
    _, off, _ = hflip(r.image, r.points, r.mask, "official")
    np.testing.assert_allclose(off, landmarks_from_mask(mask).to_array())  # re-derived by the rule
    assert off[0, 0] > off[1, 0]  # official PS1 is again the larger-x end
    with pytest.raises(ValueError, match="has none"):
        hflip(r.image, r.points, None, "official")


def test_dataset_targets_are_consistent_and_epochs_deterministic(records):
    ds = LandmarkDataset(records, input_size=64, stride=2, sigma=1.5, augment=AugmentConfig(), seed=4)
    s = ds[2]
    assert s["image"].shape == (1, 64, 64) and s["heatmaps"].shape == (3, 32, 32) and s["mask"].shape == (64, 64)
    xy, _ = decode_heatmaps(s["heatmaps"].numpy(), method="quadratic", sigma=1.5)
    np.testing.assert_allclose(xy, to_grid_coords(s["points"].numpy(), (64, 64), (32, 32)), atol=0.05)
    again = ds[2]
    assert np.array_equal(s["image"].numpy(), again["image"].numpy())  # same (seed, epoch, index)
    ds.set_epoch(1)
    assert not np.array_equal(s["image"].numpy(), ds[2]["image"].numpy())
    plain = LandmarkDataset(records, input_size=64)[0]
    np.testing.assert_allclose(plain["points"].numpy(), to_grid_coords(records[0].points, (128, 128), (64, 64)),
                               atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(plain["orig_points"].numpy(), records[0].points)


def test_epoch_sampler_depends_only_on_seed_and_epoch():
    a, b = EpochSampler(10, seed=1), EpochSampler(10, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(4)
    assert list(a) != list(b)


def test_random_fan_changes_the_screen_but_keeps_the_anatomy_in_view(records):
    r = records[0]
    img = np.full((128, 128), 200, np.uint8)  # a bright screen, so every redrawn pixel shows
    mask = (r.mask > 0).astype(np.uint8)
    changed = 0
    for seed in range(40):
        out = random_fan(img, r.points, np.random.default_rng(seed), mask)
        assert out.dtype == np.uint8 and out.shape == img.shape
        for x, y in np.rint(r.points).astype(int):  # every landmark and its neighbourhood stays in view
            assert (out[y - 1 : y + 2, x - 1 : x + 2] == 200).all(), seed
        changed += int((out != 200).mean() > 0.02)
        again = random_fan(img, r.points, np.random.default_rng(seed), mask)
        assert np.array_equal(out, again)  # seeded
    assert changed >= 30  # the screen is redrawn almost every time
    # landmarks in both top corners: whatever sector is drawn holds them, or the image is left alone
    wide = np.array([[1.0, 1.0], [126.0, 1.0], [64.0, 100.0]])
    for seed in range(20):
        out = random_fan(img, wide, np.random.default_rng(seed))
        assert out[1, 1] == out[1, 126] == out[100, 64] == 200


def test_dataset_applies_random_fan_only_when_asked(records):
    base = LandmarkDataset(records, input_size=64, augment=AugmentConfig(p_fan=0.0), seed=2)
    fan = LandmarkDataset(records, input_size=64, augment=AugmentConfig(p_fan=1.0), seed=2)
    diffs = [not np.array_equal(base[i]["image"].numpy(), fan[i]["image"].numpy()) for i in range(len(records))]
    assert sum(diffs) >= len(records) - 1
    for i in range(len(records)):  # the labels do not move
        for key in ("mask", "points", "heatmaps"):
            np.testing.assert_array_equal(base[i][key].numpy(), fan[i][key].numpy())


def test_random_fan_spares_labelled_pixels_from_the_depth_limit_and_the_bar(records):
    r = records[0]
    img = np.full((128, 128), 200, np.uint8)
    mask = np.zeros((128, 128), np.uint8)
    cx, cy = np.rint(r.points.mean(axis=0)).astype(int)
    mask[cy - 3 : cy + 4, cx - 3 : cx + 4] = 2  # inside the landmarks' hull, hence inside every sector drawn
    mask[120:, 60:68] = 2  # deep, below the apex: only a depth limit or a bottom bar could hide it
    for seed in range(60):
        out = random_fan(img, r.points, np.random.default_rng(seed), mask)
        assert (out[mask > 0] == 200).all(), seed
