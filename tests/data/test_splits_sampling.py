"""Block folds, the split protocol, AoP-band sampling weights and the orientation samples of the dataset."""

from __future__ import annotations

import math
from collections import Counter

import cv2
import numpy as np
import pytest

from partus.data.dataset import EpochSampler, LandmarkDataset, aop_band_weights
from partus.data.records import Record, load_phantoms
from partus.data.splits import block_kfold, group_kfold
from partus.geometry import angle_of_progression
from partus.preprocess import resize_image
from partus.train.fit import split


# --------------------------------------------------------------------------- block_kfold
def test_block_kfold_doctest_example():
    assert block_kfold([3, 1, 2, 4], ["a", "b", "b", "c"], 2).tolist() == [1, 0, 0, 1]


@pytest.mark.parametrize(("n", "k"), [(10, 3), (12, 4), (7, 2), (5, 5), (23, 5)])
def test_block_kfold_without_groups_cuts_contiguous_near_equal_blocks(n, k):
    rng = np.random.default_rng(n)
    keys = rng.permutation(n) * 10  # order keys in shuffled item order
    folds = block_kfold(keys.tolist(), [None] * n, k)
    in_order = folds[np.argsort(keys)]
    assert np.all(np.diff(in_order) >= 0), "blocks are not contiguous in key order"
    sizes = np.bincount(folds, minlength=k)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == n
    assert set(folds.tolist()) == set(range(k))
    # The reference: rank r of n goes to block floor(r * k / n).
    assert in_order.tolist() == [r * k // n for r in range(n)]


def test_block_kfold_keeps_groups_whole_in_the_block_of_their_first_item():
    keys = list(range(12))
    groups = ["s0", "s0", "s0", "s1", "s1", "s2", "s2", "s2", "s3", "s3", "s3", "s3"]
    folds = block_kfold(keys, groups, 3)
    for g in set(groups):
        assert len({f for f, gg in zip(folds, groups, strict=True) if gg == g}) == 1, g
    # s1 starts at rank 3 (block 0) and s2 at rank 5 (block 1): whole sessions, in order.
    assert folds.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    # A group with items far apart follows its first item.
    far = block_kfold([0, 1, 2, 3, 4, 5], ["x", None, None, None, None, "x"], 2)
    assert far[0] == far[5] == 0


def test_block_kfold_leaves_no_fold_empty_when_there_are_enough_groups():
    """Three sessions for three folds: every fold must get one (an empty fold validates nothing, and its
    model silently trains on all the data). group_kfold manages it; block_kfold put a long first session
    in block 0 and the next two both in block 2."""
    groups = ["a"] * 7 + ["b", "c"]
    assert sorted(set(group_kfold(groups, 3).tolist())) == [0, 1, 2]
    folds = block_kfold(list(range(9)), groups, 3)
    assert sorted(set(folds.tolist())) == [0, 1, 2], folds.tolist()


def test_block_kfold_orders_by_key_not_position_and_breaks_ties_by_position():
    folds = block_kfold(["c", "a", "b", "d"], [None] * 4, 2)
    assert folds.tolist() == [1, 0, 0, 1]
    ties = block_kfold([1, 1, 1, 1], [None] * 4, 2)
    assert ties.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("keys", "groups", "k", "match"),
    [
        ([1, 2, 3], [None, None], 2, "2 groups for 3 items"),
        ([1, 2, 3], [None] * 3, 1, "n_folds must be in 2..3"),
        ([1, 2, 3], [None] * 3, 4, "n_folds must be in 2..3"),
    ],
)
def test_block_kfold_errors(keys, groups, k, match):
    with pytest.raises(ValueError, match=match):
        block_kfold(keys, groups, k)


# --------------------------------------------------------------------------- split protocol
def _records(n=20):
    rng = np.random.default_rng(0)
    order = rng.permutation(n)
    pts = np.array([[30.0, 20.0], [10.0, 25.0], [45.0, 40.0]])
    img = np.zeros((8, 8), np.uint8)
    return [Record(f"scan{i:03d}", img, pts, None, f"session{i // 3}") for i in order]


def test_split_blocks_holds_out_contiguous_sessions():
    recs = _records()
    seen = []
    for fold in range(4):
        train, val = split(recs, fold, 4, seed=0, protocol="blocks")
        assert len(train) + len(val) == len(recs) and not {r.name for r in train} & {r.name for r in val}
        assert not {r.group for r in train} & {r.group for r in val}
        ids = sorted(int(r.name[4:]) for r in val)
        assert ids == list(range(ids[0], ids[-1] + 1)), f"fold {fold} is not a contiguous id block: {ids}"
        seen += ids
    assert sorted(seen) == list(range(20))
    expected = block_kfold([r.name for r in recs], [r.group for r in recs], 4)
    _, val0 = split(recs, 0, 4, seed=0, protocol="blocks")
    assert [r.name for r in val0] == [r.name for r, f in zip(recs, expected, strict=True) if f == 0]


def test_split_grouped_is_unchanged_and_the_default():
    recs = _records()
    ids = group_kfold([r.group for r in recs], 4, seed=7)
    for fold in range(4):
        default = split(recs, fold, 4, 7)
        grouped = split(recs, fold, 4, 7, "grouped")
        assert [r.name for r in default[1]] == [r.name for r in grouped[1]]
        assert [r.name for r in grouped[1]] == [r.name for r, f in zip(recs, ids, strict=True) if f == fold]
        assert [r.name for r in grouped[0]] == [r.name for r, f in zip(recs, ids, strict=True) if f != fold]


def test_split_rejects_unknown_protocol_and_fold():
    with pytest.raises(ValueError, match="'random'"):
        split(_records(), 0, 4, 0, "random")
    with pytest.raises(ValueError, match=r"fold must be in 0\.\.3"):
        split(_records(), 4, 4, 0, "blocks")


# --------------------------------------------------------------------------- AoP-band weights
def _points_with_aop(deg: float) -> np.ndarray:
    t = math.radians(180.0 - deg)
    return np.array([[100.0, 100.0], [60.0, 100.0], [100.0 + 50 * math.cos(t), 100.0 + 50 * math.sin(t)]])


def test_aop_band_weights_give_each_band_equal_total():
    degs = [70, 80, 85, 88, 100, 120, 121, 125, 140, 150, 160, 170.0]
    pts = [_points_with_aop(d) for d in degs]
    w = aop_band_weights(pts)
    bands = np.digitize(degs, [90, 110, 130])
    totals = [w[bands == b].sum() for b in range(4)]
    np.testing.assert_allclose(totals, 1.0)
    np.testing.assert_allclose(w, [1 / 4] * 4 + [1.0] + [1 / 3] * 3 + [1 / 4] * 4)


def test_aop_band_weights_edge_goes_up_and_empty_bands_are_fine():
    pts = [np.array([[0.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]), _points_with_aop(100), _points_with_aop(50)]
    assert angle_of_progression(*pts[0]) == 90.0
    w = aop_band_weights(pts)  # 90 shares the 90-110 band with 100; nothing at >= 110
    np.testing.assert_allclose(w, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(aop_band_weights(pts, edges=(95.0,)), [0.5, 1.0, 0.5])  # 90 and 50 share a band


# --------------------------------------------------------------------------- EpochSampler
def test_weighted_sampler_is_deterministic_per_seed_and_epoch():
    w = np.array([0.0, 1.0, 1.0, 2.0, 4.0])
    a, b = EpochSampler(5, seed=3, weights=w), EpochSampler(5, seed=3, weights=w)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) == list(a) and len(list(a)) == len(a) == 5
    orders = set()
    for epoch in range(10):
        a.set_epoch(epoch)
        orders.add(tuple(a))
    assert len(orders) > 1
    other = EpochSampler(5, seed=4, weights=w)
    differ = []
    for epoch in range(5):
        a.set_epoch(epoch)
        other.set_epoch(epoch)
        differ.append(tuple(a) != tuple(other))
    assert any(differ)  # the seed matters too


def test_weighted_sampler_follows_the_weights():
    w = np.array([0.0, 1.0, 1.0, 2.0, 4.0])
    s = EpochSampler(5, seed=0, weights=w)
    counts = Counter()
    for epoch in range(400):
        s.set_epoch(epoch)
        counts.update(s)
    freq = np.array([counts[i] for i in range(5)]) / 2000
    assert counts[0] == 0  # weight 0: never drawn
    np.testing.assert_allclose(freq, w / w.sum(), atol=0.03)


def test_unweighted_sampler_is_still_a_permutation():
    s = EpochSampler(7, seed=1)
    for epoch in range(3):
        s.set_epoch(epoch)
        assert sorted(s) == list(range(7))
    assert list(EpochSampler(4, shuffle=False)) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "weights", [[1.0, 1.0], [1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [1.0, np.nan, 1.0], [1.0, np.inf, 1.0]]
)
def test_bad_weights_raise(weights):
    with pytest.raises(ValueError, match="weights must be 3 finite non-negative numbers"):
        EpochSampler(3, weights=np.array(weights))


# --------------------------------------------------------------------------- orientation samples
@pytest.fixture(scope="module")
def records():
    return load_phantoms(12, seed=1, size=128)


def test_default_dataset_never_mirrors(records):
    ds = LandmarkDataset(records, input_size=64)
    for epoch in range(2):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            assert s["mirrored"].item() == 0.0 and s["mirrored"].dtype.is_floating_point
            expected = resize_image(records[i].image, 64).astype(np.float32) / 255
            assert np.array_equal(s["image"][0].numpy(), expected)


def test_orientation_samples_are_mirrored_images_with_anatomical_points(records):
    plain = LandmarkDataset(records, input_size=64)
    ds = LandmarkDataset(records, input_size=64, orientation_p=0.5, seed=2)
    flags = []
    for i in range(len(ds)):
        s, p = ds[i], plain[i]
        flags.append(s["mirrored"].item())
        if s["mirrored"].item() == 1.0:
            assert np.array_equal(s["image"][0].numpy(), np.fliplr(p["image"][0].numpy()))
            np.testing.assert_allclose(s["points"][:, 0], 63 - p["points"][:, 0], atol=1e-5)
            np.testing.assert_allclose(s["points"][:, 1], p["points"][:, 1])
            # mirrored at the original resolution, then resized (nearest)
            mask = cv2.resize(np.fliplr(records[i].mask), (64, 64), interpolation=cv2.INTER_NEAREST)
            assert np.array_equal(s["mask"].numpy(), mask)
            np.testing.assert_allclose(s["heatmaps"].numpy(), np.flip(p["heatmaps"].numpy(), -1), atol=1e-5)
        else:
            assert s["mirrored"].item() == 0.0
            assert np.array_equal(s["image"].numpy(), p["image"].numpy())
            assert np.array_equal(s["points"].numpy(), p["points"].numpy())
        # the unaugmented record's own points, for evaluation in original pixels
        assert np.array_equal(s["orig_points"].numpy(), records[i].points.astype(np.float32))
    assert set(flags) == {0.0, 1.0}
    again = LandmarkDataset(records, input_size=64, orientation_p=0.5, seed=2)
    assert [again[i]["mirrored"].item() for i in range(len(ds))] == flags  # seeded


def test_orientation_p_one_mirrors_every_sample(records):
    ds = LandmarkDataset(records[:4], input_size=64, orientation_p=1.0)
    assert all(ds[i]["mirrored"].item() == 1.0 for i in range(4))
