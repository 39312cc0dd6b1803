"""The symphysis turn (partus.data.turn): the AoP changes by exactly the turn, the image and mask follow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from partus.conventions import FH, PS
from partus.data.augment import AugmentConfig
from partus.data.dataset import LandmarkDataset
from partus.data.records import load_phantoms
from partus.data.turn import turn_symphysis
from partus.geometry import angle_of_progression, landmarks_from_mask


@pytest.fixture(scope="module")
def records():
    return load_phantoms(8, seed=3, size=192)


def _side(points: np.ndarray) -> float:
    u, v = points[1] - points[0], points[2] - points[0]
    return 1.0 if u[0] * v[1] - u[1] * v[0] > 0 else -1.0


@pytest.mark.parametrize("theta", [-12.0, -4.0, 4.0, 12.0])
def test_the_aop_changes_by_the_turn_and_ps1_fh1_stay(records, theta):
    turned = 0
    for r in records:
        img, pts, mask, applied = turn_symphysis(r.image, r.points, r.mask, theta)
        assert abs(applied) <= abs(theta) + 1e-9 and applied * theta >= 0
        turned += applied != 0
        np.testing.assert_array_equal(pts[[0, 2]], r.points[[0, 2]])
        assert np.hypot(*(pts[1] - pts[0])) == pytest.approx(np.hypot(*(r.points[1] - r.points[0])))
        before, after = angle_of_progression(*r.points), angle_of_progression(*pts)
        assert after == pytest.approx(before - applied, abs=1e-6)
        assert img.shape == r.image.shape and img.dtype == r.image.dtype and mask.dtype == r.mask.dtype
    assert turned >= len(records) - 2  # most phantoms leave room for the turn


def test_the_symphysis_turns_rigidly_and_the_heads_far_flank_stays(records):
    for r in records:
        img, pts, mask, theta = turn_symphysis(r.image, r.points, r.mask, 10.0)
        if theta == 0:
            continue
        # an independent reference: the symphysis mask turned rigidly about PS1 by OpenCV
        ps1 = (float(r.points[0, 0]), float(r.points[0, 1]))
        rot = cv2.getRotationMatrix2D(ps1, -_side(r.points) * theta, 1.0)  # OpenCV: positive = anticlockwise
        rigid = cv2.warpAffine((r.mask == PS).astype(np.uint8), rot, r.mask.shape[::-1], flags=cv2.INTER_NEAREST) > 0
        got = mask == PS
        assert (got & rigid).sum() / (got | rigid).sum() > 0.95
        # the head's pixels near FH1 have not moved
        ys, xs = np.mgrid[: r.mask.shape[0], : r.mask.shape[1]]
        near = np.hypot(xs - r.points[2, 0], ys - r.points[2, 1]) < 6
        np.testing.assert_array_equal(mask[near] == FH, r.mask[near] == FH)


def test_the_official_rule_on_the_turned_mask_agrees_with_the_turned_points(records):
    gaps = []
    for r in records:
        for theta in (-10.0, 10.0):
            _, pts, mask, applied = turn_symphysis(r.image, r.points, r.mask, theta)
            if applied:
                rule = landmarks_from_mask(mask).to_array()
                gaps.append(abs(angle_of_progression(*rule) - angle_of_progression(*pts)))
    assert len(gaps) >= 10
    assert np.median(gaps) < 1.5  # the rule re-derives the labels from pixels: a few px of discretisation


def test_a_large_request_is_clipped_so_nothing_folds(records):
    r = records[0]
    _, pts, mask, applied = turn_symphysis(r.image, r.points, r.mask, 120.0)
    assert 0 < applied < 120.0
    assert 0.7 < (mask == FH).sum() / (r.mask == FH).sum() < 1.3  # no pixel folded onto another
    assert angle_of_progression(*pts) == pytest.approx(angle_of_progression(*r.points) - applied, abs=1e-6)


def test_no_turn_without_room_or_request(records):
    r = records[0]
    for theta, points in ((0.0, r.points), (10.0, np.array([r.points[0], r.points[0], r.points[2]]))):
        img, pts, mask, applied = turn_symphysis(r.image, points, r.mask, theta)
        assert applied == 0.0 and img is r.image and mask is r.mask
        np.testing.assert_array_equal(pts, points)
    _, pts, mask, applied = turn_symphysis(r.image, r.points, None, 8.0)  # no mask: a fixed rigid sector
    assert mask is None and angle_of_progression(*pts) == pytest.approx(angle_of_progression(*r.points) - applied)


def test_dataset_turns_only_when_asked_and_replays_the_same_turn(records):
    still = AugmentConfig(p_affine=0, p_color=0, p_gamma=0, p_blur=0, p_speckle=0)
    base = LandmarkDataset(records, input_size=96, augment=still, seed=5)
    turn = LandmarkDataset(records, input_size=96, augment=still.model_copy(update={"p_turn": 1.0}), seed=5)
    moved = 0
    for i in range(len(records)):
        a, b = base[i]["points"].numpy().astype(float), turn[i]["points"].numpy().astype(float)
        change = angle_of_progression(*a) - angle_of_progression(*b)
        assert abs(change) <= still.turn_deg + 1e-3
        moved += abs(change) > 0.5
        np.testing.assert_array_equal(turn[i]["image"].numpy(), turn[i]["image"].numpy())  # deterministic
    assert moved >= len(records) // 2
