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


@pytest.mark.parametrize("request_deg", [10.0, -25.0, 30.0])  # beyond the rigid sector's 15 deg too
def test_the_symphysis_turns_rigidly_and_the_heads_far_flank_stays(records, request_deg):
    turned = 0
    for r in records:
        img, pts, mask, theta = turn_symphysis(r.image, r.points, r.mask, request_deg)
        if theta == 0:
            continue
        turned += 1
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
    assert turned >= len(records) // 2


def test_without_a_mask_the_scan_around_fh1_stays_too(records):
    for r in records:
        img, pts, _, theta = turn_symphysis(r.image, r.points, None, -12.0)
        assert theta != 0
        ys, xs = np.mgrid[: r.image.shape[0], : r.image.shape[1]]
        near = np.hypot(xs - r.points[2, 0], ys - r.points[2, 1]) < 5
        assert np.abs(img[near].astype(int) - r.image[near]).max() <= 2  # resampled in place: rounding only
        assert angle_of_progression(*pts) == pytest.approx(angle_of_progression(*r.points) - theta, abs=1e-6)


def test_an_fh1_near_ps1_stays_put_without_a_mask(records):
    r = records[0]
    u = r.points[1] - r.points[0]
    c, s_ = np.cos(np.radians(120)), np.sin(np.radians(120))
    fh1 = r.points[0] + 0.35 * np.array([c * u[0] - s_ * u[1], s_ * u[0] + c * u[1]])  # 0.35 lengths from PS1
    points = np.array([r.points[0], r.points[1], fh1])
    yy, xx = np.mgrid[: r.image.shape[0], : r.image.shape[1]].astype(np.float32)
    ramp = xx + 2 * yy  # any displacement shows
    near = np.hypot(xx - fh1[0], yy - fh1[1]) < 2.5
    for theta in (-12.0, 12.0):
        img, _, _, applied = turn_symphysis(ramp, points, None, theta)
        assert applied == theta
        assert np.abs(img[near] - ramp[near]).max() < 0.05


@pytest.mark.parametrize("request_deg", [-25.0, -40.0, 30.0])
def test_the_warp_neither_tears_nor_folds(records, request_deg):
    h, w = records[0].image.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    ramp = xx + 2 * yy  # 2.2 per px at most; a torn or folded map jumps by tens
    for r in records:
        img = turn_symphysis(ramp, r.points, r.mask, request_deg)[0]
        inside = turn_symphysis(np.ones((h, w), np.float32), r.points, r.mask, request_deg)[0] == 1.0
        steps = [np.abs(np.diff(img, axis=a))[inside[1:] & inside[:-1] if a == 0 else inside[:, 1:] & inside[:, :-1]]
                 for a in (0, 1)]  # fmt: skip
        assert max(d.max() for d in steps) < 8.0  # stretched at most 1 / MIN_SLOPE


def test_a_turn_away_from_the_head_stops_short_of_180_degrees():
    wide = [p for p in load_phantoms(12, seed=5, size=192) if angle_of_progression(*p.points) > 150]
    assert wide, "no phantom with a wide angle"
    for r in wide:
        _, pts, mask, theta = turn_symphysis(r.image, r.points, r.mask, -60.0)
        assert angle_of_progression(*pts) <= 178.0 + 1e-6
        rule = landmarks_from_mask(mask).to_array()  # FH1 is still the tangent point of the turned head
        assert np.hypot(*(rule[2] - pts[2])) < 4.0


def test_the_official_rule_on_the_turned_mask_agrees_with_the_turned_points(records):
    gaps = []
    for r in records:
        for theta in (-10.0, 10.0):
            _, pts, mask, applied = turn_symphysis(r.image, r.points, r.mask, theta)
            if applied:
                rule = landmarks_from_mask(mask).to_array()
                gaps.append(abs(angle_of_progression(*rule) - angle_of_progression(*pts)))
    assert len(gaps) >= 10
    # the rule re-derives the labels from pixels: its endpoints move by a pixel or two
    assert np.median(gaps) < 1.5 and np.percentile(gaps, 90) < 4.0


@pytest.mark.parametrize("request_deg", [120.0, -120.0])
def test_a_large_request_is_clipped_and_the_labels_still_hold(records, request_deg):
    for r in records[:4]:
        _, pts, mask, applied = turn_symphysis(r.image, r.points, r.mask, request_deg)
        assert 0 < applied / request_deg < 1
        assert angle_of_progression(*pts) == pytest.approx(angle_of_progression(*r.points) - applied, abs=1e-6)
        assert np.hypot(*(landmarks_from_mask(mask).to_array()[2] - pts[2])) < 4.0  # FH1: still the tangent


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
    turning = still.model_copy(update={"p_turn": 1.0})
    turn, again = (LandmarkDataset(records, input_size=96, augment=turning, seed=5) for _ in range(2))
    moved = 0
    for i in range(len(records)):
        a, b = base[i]["points"].numpy().astype(float), turn[i]["points"].numpy().astype(float)
        change = angle_of_progression(*a) - angle_of_progression(*b)
        assert abs(change) <= still.turn_deg + 1e-3
        moved += abs(change) > 0.5
        np.testing.assert_array_equal(turn[i]["image"].numpy(), again[i]["image"].numpy())  # replayed
    assert moved >= len(records) // 2
