"""Evaluation metrics: analytic cases, and SimpleITK / MONAI references on real PSFHS masks."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partus.evaluate import (
    EMPTY_PENALTY,
    aop_errors,
    asd,
    classification_metrics,
    dice,
    evaluate_landmarks,
    evaluate_segmentation,
    fhpsaop2023_score,
    hausdorff,
    hd95,
    landmark_mean_errors,
    mre,
    point_errors,
    sdr,
    segmentation_metrics,
)
from partus.geometry import angle_of_progression
from partus.segmetrics import _edt

SHARED = Path(os.environ.get("PARTUS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
PSFHS_DEV = SHARED / "data" / "psfhs-dev"
needs_psfhs = pytest.mark.skipif(not (PSFHS_DEV / "labels").is_dir(), reason=f"{PSFHS_DEV} is absent")

# PS1 is the vertex; PS2 straight to its left, so AoP = 180 - (polar angle of FH1 - PS1).
GT = np.array([[[100.0, 100.0], [60.0, 100.0], [130.0, 140.0]]])  # FH1 - PS1 = (30, 40)
GT_AOP = 180.0 - math.degrees(math.atan2(40, 30))


def _rotate_fh1(points: np.ndarray, deg: float) -> np.ndarray:
    out = points.copy()
    v = out[:, 2] - out[:, 0]
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    out[:, 2] = out[:, 0] + v @ np.array([[c, s], [-s, c]])  # rotates the polar angle by +deg
    return out


# --------------------------------------------------------------------------- landmarks
def test_identical_sets_give_zero_errors():
    gt = np.concatenate([GT, GT + 7.5, _rotate_fh1(GT, 20)])
    rep = evaluate_landmarks(gt.copy(), gt)
    s = rep.summary
    assert np.array_equal(rep.errors, np.zeros((3, 3)))
    assert s["mre"] == 0 and s["n_missing"] == 0 and s["n_images"] == 3
    assert s["per_landmark"] == {"PS1": 0.0, "PS2": 0.0, "FH1": 0.0}
    assert s["sdr"] == {"5": 1.0, "10": 1.0, "20": 1.0}
    assert s["aop"]["mae"] == 0 and s["aop"]["bias"] == 0 and s["aop"]["n"] == 3
    assert rep.aop_gt[0] == pytest.approx(GT_AOP, abs=1e-12)


def test_shift_fh1_by_3_4_gives_error_5():
    along = GT.copy()
    along[0, 2] += (3, 4)  # along the ray PS1 -> FH1: AoP unchanged
    across = GT.copy()
    across[0, 2] += (-4, 3)  # perpendicular to it
    rep = evaluate_landmarks(np.concatenate([along, across]), np.concatenate([GT, GT]))
    assert rep.errors.tolist() == [[0, 0, 5], [0, 0, 5]]
    assert rep.summary["mre"] == pytest.approx(5 / 3, abs=1e-15)
    assert rep.summary["per_landmark"] == {"PS1": 0.0, "PS2": 0.0, "FH1": 5.0}
    expected_across = (180.0 - math.degrees(math.atan2(43, 26))) - GT_AOP
    np.testing.assert_allclose(rep.aop_pred - rep.aop_gt, [0.0, expected_across], atol=1e-12)
    assert rep.summary["aop"]["mae"] == pytest.approx(abs(expected_across) / 2, abs=1e-12)
    assert rep.summary["sdr"] == {"5": 1.0, "10": 1.0, "20": 1.0}  # 5 <= 5: inclusive


def test_rotating_fh1_changes_aop_by_the_rotation():
    pred = np.concatenate([_rotate_fh1(GT, 10), _rotate_fh1(GT, -4)])
    err = aop_errors(pred, np.concatenate([GT, GT]))
    np.testing.assert_allclose(err, [-10.0, 4.0], atol=1e-10)
    rep = evaluate_landmarks(pred, np.concatenate([GT, GT]))
    a = rep.summary["aop"]
    assert a["mae"] == pytest.approx(7.0) and a["median_ae"] == pytest.approx(7.0)
    assert a["bias"] == pytest.approx(-3.0)
    assert a["sd"] == pytest.approx(math.sqrt(2 * 7.0**2))  # sample SD of (-10, 4)
    assert a["loa_high"] == pytest.approx(-3.0 + 1.96 * a["sd"])


def test_vectorised_aop_matches_scalar_geometry():
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 256, size=(50, 3, 2))
    gt = rng.uniform(0, 256, size=(50, 3, 2))
    rep = evaluate_landmarks(pts, gt)
    scalar = [angle_of_progression(*p) for p in pts]
    np.testing.assert_allclose(rep.aop_pred, scalar, rtol=0, atol=1e-12)


def test_pixel_spacing_scales_x_and_y_separately():
    pred = GT.copy()
    pred[0, 2] += (3, 4)
    e = point_errors(pred, GT, pixel_spacing=(0.5, 0.25))
    assert e[0, 2] == pytest.approx(math.hypot(1.5, 1.0), abs=1e-15)
    rep = evaluate_landmarks(pred, GT, pixel_spacing=(0.5, 0.25))
    assert rep.summary["unit"] == "mm" and rep.summary["aop"]["mae"] == pytest.approx(0, abs=1e-12)


def test_missing_predictions_are_counted_not_averaged():
    pred = np.concatenate([GT, np.full_like(GT, np.nan), GT + (3, 4)])
    gt = np.concatenate([GT, GT, GT])
    rep = evaluate_landmarks(pred, gt, names=["a", "b", "c"])
    s = rep.summary
    assert s["n_missing"] == 1 and s["aop"]["n"] == 2
    assert s["mre"] == pytest.approx(2.5)  # (0 * 3 + 5 * 3) / 6 over the two measurable images
    assert s["sdr"]["5"] == 1.0
    rows = rep.per_image()
    assert [r["name"] for r in rows] == ["a", "b", "c"] and rows[1]["missing"] and math.isnan(rows[1]["mre"])
    with pytest.raises(ValueError, match=r"missing='raise'.*\['b'\]"):
        evaluate_landmarks(pred, gt, names=["a", "b", "c"], missing="raise")
    pen = evaluate_landmarks(pred, gt, missing="penalize", penalty=100.0).summary
    assert pen["mre"] == pytest.approx((15 + 300) / 9)
    assert pen["aop"]["mae"] == pytest.approx(180 / 3) and pen["aop"]["n"] == 3
    assert pen["sdr"]["20"] == pytest.approx(6 / 9)
    with pytest.raises(ValueError, match="missing must be one of"):
        evaluate_landmarks(pred, gt, missing="ignore")


def test_degenerate_prediction_has_no_aop_but_has_point_errors():
    pred = GT.copy()
    pred[0, 1] = pred[0, 0]  # PS2 on PS1
    rep = evaluate_landmarks(np.concatenate([pred, GT]), np.concatenate([GT, GT]))
    assert rep.errors[0, 1] == pytest.approx(40.0) and math.isnan(rep.aop_pred[0])
    assert rep.summary["aop"]["n"] == 1 and rep.summary["n_missing"] == 0


def test_given_aop_and_hsd_are_used():
    gt = np.concatenate([GT, GT])
    rep = evaluate_landmarks(
        gt, gt, pred_aop=[120.0, np.nan], gt_aop=[110.0, 100.0], pred_hsd=[10.0, 20.0], gt_hsd=[12.0, 20.0]
    )
    assert rep.summary["aop"] == {
        "n": 1, "mae": 10.0, "median_ae": 10.0, "bias": 10.0, "sd": 0.0, "loa_low": 10.0, "loa_high": 10.0
    }  # fmt: skip
    assert rep.summary["hsd"]["mae"] == 1.0 and rep.summary["hsd"]["bias"] == -1.0
    assert rep.per_image()[0]["hsd_error"] == -2.0
    with pytest.raises(ValueError, match="together"):
        evaluate_landmarks(gt, gt, pred_hsd=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"gt_aop must have shape \(2,\), got \(3,\)"):
        evaluate_landmarks(gt, gt, gt_aop=[1.0, 2.0, 3.0])


def test_small_metric_helpers():
    e = np.array([[0.0, 5.0, 10.0], [np.nan, 2.0, 21.0]])
    assert mre(e) == pytest.approx(38 / 5)
    assert landmark_mean_errors(e) == {"PS1": 0.0, "PS2": 3.5, "FH1": 15.5}
    assert sdr(e, radii=(5, 10, 20)) == {5: 0.6, 10: 0.8, 20: 0.8}
    assert math.isnan(mre([np.nan, np.nan]))


@pytest.mark.parametrize(
    ("pred", "gt", "match"),
    [
        (np.zeros((2, 3, 2)), np.zeros((3, 3, 2)), r"pred and gt must have the same shape, got \(2, 3, 2\)"),
        (np.zeros((2, 2)), np.zeros((2, 2)), r"pred must have shape \(N, 3, 2\).*got \(2, 2\)"),
        (np.zeros((1, 3, 2)), np.full((1, 3, 2), np.nan), "gt must be finite"),
        (np.full((1, 3, 2), np.inf), np.zeros((1, 3, 2)), "pred must not contain inf"),
    ],
)
def test_landmark_validation(pred, gt, match):
    with pytest.raises(ValueError, match=match):
        point_errors(pred, gt)


@settings(max_examples=40, deadline=None)
@given(st.floats(-math.pi, math.pi), st.floats(-50, 50), st.floats(-50, 50), st.integers(0, 2**32 - 1))
def test_errors_invariant_under_rigid_motion(theta, tx, ty, seed):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 200, size=(4, 3, 2))
    pred = gt + rng.normal(0, 5, size=gt.shape)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    move = lambda p: p @ rot.T + (tx, ty)  # noqa: E731
    np.testing.assert_allclose(point_errors(move(pred), move(gt)), point_errors(pred, gt), atol=1e-9)
    np.testing.assert_allclose(aop_errors(move(pred), move(gt)), aop_errors(pred, gt), atol=1e-7)


# --------------------------------------------------------------------------- segmentation: analytic
def _blank(shape=(40, 50)) -> np.ndarray:
    return np.zeros(shape, dtype=bool)


def test_dice_smoothed_definition():
    p, g = _blank(), _blank()
    p[5:15, 5:15], g[5:15, 10:20] = True, True  # overlap 50, sizes 100 + 100
    assert dice(p, g) == pytest.approx(101 / 201, abs=1e-15)
    assert dice(_blank(), _blank()) == 1.0
    assert dice(_blank(), g) == 0.0
    assert dice(p, _blank()) == pytest.approx(1 / 101)
    assert dice(p.astype(np.uint8), g.astype(float)) == dice(p, g)


def test_single_pixel_distances_and_spacing_axis_order():
    p, g = _blank(), _blank()
    p[5, 5], g[5, 9] = True, True  # 4 px apart along x
    for f in (hausdorff, hd95, asd):
        assert f(p, g) == 4.0
        assert f(p, g, pixel_spacing=(0.5, 2.0)) == pytest.approx(2.0)  # sx = 0.5 mm
    g2 = _blank()
    g2[9, 5] = True  # 4 px apart along y
    assert hausdorff(p, g2, pixel_spacing=(0.5, 2.0)) == pytest.approx(8.0)  # sy = 2 mm


def test_shifted_square():
    p, g = _blank(), _blank()
    p[10:20, 10:20], g[10:20, 13:23] = True, True
    assert hausdorff(p, g) == 3.0
    assert hausdorff(p, g, pixel_spacing=(0.4, 0.4)) == pytest.approx(1.2, abs=1e-12)


def test_hausdorff_is_between_pixel_sets_not_contours():
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    disc, ring = r <= 20, (r >= 16) & (r <= 18)
    # The disc centre is 16 px from the ring's pixels; the contours are only ~2-4 px apart.
    assert hausdorff(disc, ring) == 16.0
    assert hd95(disc, ring) < 5.0


def test_empty_prediction_penalties():
    g = _blank()
    g[10:20, 10:20] = True
    for p_, g_ in ((_blank(), g), (g, _blank())):
        assert hausdorff(p_, g_) == hd95(p_, g_) == asd(p_, g_) == EMPTY_PENALTY == 100.0
    assert hausdorff(_blank(), _blank()) == hd95(_blank(), _blank()) == asd(_blank(), _blank()) == 0.0
    lab = np.zeros((40, 50), np.uint8)
    lab[10:20, 10:20], lab[25:35, 10:40] = 1, 2
    only_fh = np.where(lab == 2, 2, 0).astype(np.uint8)
    m = segmentation_metrics(only_fh, lab)
    assert m["PS"] == {"dice": 0.0, "hd": 100.0, "hd95": 100.0, "asd": 100.0}
    assert m["FH"] == {"dice": 1.0, "hd": 0.0, "hd95": 0.0, "asd": 0.0}
    assert m["ALL"]["dice"] == pytest.approx((2 * 300 + 1) / (300 + 400 + 1))
    rep = evaluate_segmentation([only_fh, lab], [lab, lab])
    assert rep.summary["n_empty_pred"] == {"PS": 1, "FH": 0, "ALL": 0}
    assert rep.summary["per_class"]["PS"]["hd"] == 50.0


def test_anisotropic_and_large_images_use_exact_transform():
    rng = np.random.default_rng(0)
    from scipy.ndimage import distance_transform_edt

    m = rng.random((60, 70)) < 0.01
    np.testing.assert_allclose(_edt(m, np.array([0.7, 0.7])), distance_transform_edt(~m, sampling=0.7), atol=1e-12)
    np.testing.assert_array_equal(_edt(m, np.array([1.0, 1.0])), distance_transform_edt(~m))
    big = np.zeros((1000, 1000), bool)
    big[3, 5], big[990, 997] = True, True
    np.testing.assert_allclose(_edt(big, np.ones(2)), distance_transform_edt(~big), atol=1e-12)


@pytest.mark.parametrize(
    ("pred", "gt", "match"),
    [
        (np.zeros((4, 4)), np.zeros((4, 5)), r"pred and gt must have the same shape, got \(4, 4\) and \(4, 5\)"),
        (np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), r"pred must be a 2-D \(H, W\) mask, got shape \(1, 4, 4\)"),
        (np.zeros((4, 4)), np.full((4, 4), 255), r"gt must be binary \(values 0 and 1\), got values \[255\]"),
        (np.zeros((4, 4), dtype="U1"), np.zeros((4, 4)), "pred must be a boolean or numeric mask"),
    ],
)
def test_mask_validation(pred, gt, match):
    for f in (dice, hausdorff, hd95, asd):
        with pytest.raises(ValueError, match=match):
            f(pred, gt)


def test_label_map_validation():
    with pytest.raises(ValueError, match=r"gt_label must hold only labels 0, 1 \(PS\), 2 \(FH\), got \[127, 255\]"):
        segmentation_metrics(np.zeros((4, 4), np.uint8), np.array([[0, 127], [255, 0]], np.uint8))
    with pytest.raises(ValueError, match="pred_label must be a 2-D"):
        segmentation_metrics(np.zeros((4, 4)), np.zeros((4, 4), np.uint8))


def test_fhpsaop2023_score():
    assert fhpsaop2023_score([1, 1, 1], [0, 0, 0], [0, 0, 0], 0.0) == 1.0
    expected = 0.25 * 0.9 + 0.25 * (0.5 * (1 - 10 / 100) + 0.5 * (1 - 2 / 100)) + 0.5 * (1 - 6 / 180)
    assert fhpsaop2023_score([[0.8, 1.0], [0.9, 0.9]], [10, 10], [1, 3], 6.0) == pytest.approx(expected)
    lab = np.zeros((40, 50), np.uint8)
    lab[10:20, 10:20], lab[25:35, 10:40] = 1, 2
    rep = evaluate_segmentation(np.stack([lab, lab]), np.stack([lab, lab]), names=["x", "y"])
    assert rep.score(0.0) == 1.0 and rep.summary["mean_dice"] == 1.0
    assert [r["name"] for r in rep.per_image()] == ["x", "y"]


# --------------------------------------------------------------------------- segmentation vs references
def _sitk_reference(p: np.ndarray, g: np.ndarray, spacing=(1.0, 1.0)) -> tuple[float, float]:
    sitk = pytest.importorskip("SimpleITK")
    ip, ig = (sitk.GetImageFromArray(m.astype(np.uint8)) for m in (p, g))
    ip.SetSpacing(spacing)
    ig.SetSpacing(spacing)
    hd = sitk.HausdorffDistanceImageFilter()
    hd.Execute(ip, ig)
    ov = sitk.LabelOverlapMeasuresImageFilter()
    ov.Execute(ip, ig)
    return hd.GetHausdorffDistance(), ov.GetDiceCoefficient()


def _monai_reference(p: np.ndarray, g: np.ndarray, spacing=None) -> tuple[float, float, float]:
    pytest.importorskip("monai")
    import torch
    from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance

    tp, tg = (torch.from_numpy(m[None, None].astype(np.float32)) for m in (p, g))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h95 = compute_hausdorff_distance(tp, tg, percentile=95, spacing=spacing)
        a = compute_average_surface_distance(tp, tg, symmetric=True, spacing=spacing)
        d = compute_dice(tp, tg, include_background=True)
    return float(h95), float(a), float(d)


def _real_pairs():
    """(name, label A, label B): A vs eroded+shifted A, and A vs another frame of its near-dup cluster."""
    with (PSFHS_DEV / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    clusters: dict[str, list[str]] = {}
    for r in rows:
        clusters.setdefault(r["near_dup_cluster"], []).append(r["id"])
    multi = [ids for ids in clusters.values() if len(ids) >= 2][:4]
    read = lambda i: cv2.imread(str(PSFHS_DEV / "labels" / f"{i}.png"), cv2.IMREAD_UNCHANGED)  # noqa: E731
    pairs = []
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for ids in multi:
        a = read(ids[0])
        moved = np.zeros_like(a)
        for c in (1, 2):
            m = cv2.erode((a == c).astype(np.uint8), kernel)
            moved[np.roll(m, (4, -3), axis=(0, 1)).astype(bool)] = c
        pairs += [(f"{ids[0]}-eroded", a, moved), (f"{ids[0]}-vs-{ids[1]}", a, read(ids[1]))]
    return pairs


@pytest.mark.shared
@needs_psfhs
@pytest.mark.parametrize("spacing", [None, (0.3, 0.5)])
def test_segmentation_matches_simpleitk_and_monai_on_real_masks(spacing):
    sitk_spacing = (1.0, 1.0) if spacing is None else spacing  # SimpleITK: (x, y)
    monai_spacing = None if spacing is None else [spacing[::-1]]  # MONAI: array axes (row, col)
    dev = {"hd": 0.0, "hd95": 0.0, "asd": 0.0, "dice": 0.0}
    for name, a, b in _real_pairs():
        ours = segmentation_metrics(b, a, pixel_spacing=spacing)
        for cls, labels in (("PS", (1,)), ("FH", (2,)), ("ALL", (1, 2))):
            p, g = np.isin(b, labels), np.isin(a, labels)
            hd_ref, dice_raw = _sitk_reference(p, g, sitk_spacing)
            h95_ref, asd_ref, dice_monai = _monai_reference(p, g, monai_spacing)
            s = int(p.sum() + g.sum())
            smoothed = (dice_raw * s + 1) / (s + 1)  # the official smoothing of SimpleITK's plain Dice
            m = ours[cls]
            assert m["hd"] == pytest.approx(hd_ref, abs=1e-9), (name, cls)
            assert m["dice"] == pytest.approx(smoothed, abs=1e-12), (name, cls)
            assert m["dice"] == pytest.approx((dice_monai * s + 1) / (s + 1), abs=1e-6), (name, cls)
            # MONAI returns float32.
            assert m["hd95"] == pytest.approx(h95_ref, rel=1e-6, abs=1e-5), (name, cls)
            assert m["asd"] == pytest.approx(asd_ref, rel=1e-6, abs=1e-5), (name, cls)
            for k, ref in (("hd", hd_ref), ("hd95", h95_ref), ("asd", asd_ref), ("dice", smoothed)):
                dev[k] = max(dev[k], abs(m[k] - ref))
    print(f"max deviation (spacing={spacing}): {dev}")


# --------------------------------------------------------------------------- classification
def test_classification_hand_computed_with_ties():
    m = classification_metrics([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9])
    # pairs (pos, neg): (0.5, 0.1) 1, (0.5, 0.5) 1/2, (0.9, 0.1) 1, (0.9, 0.5) 1  -> 3.5 / 4
    assert m["auc"] == 0.875 and m["auc_note"] is None
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["n"]) == (2, 1, 1, 0, 4)  # 0.5 >= threshold
    assert m["accuracy"] == 0.75 and m["f1"] == pytest.approx(0.8)
    assert m["mcc"] == pytest.approx(2 / math.sqrt(3 * 2 * 2 * 1))


def _roc_auc_trapezoid(y: np.ndarray, s: np.ndarray) -> float:
    """scikit-learn's roc_auc_score, re-derived: ROC points at each distinct threshold, trapezoid rule."""
    thr = np.unique(s)[::-1]
    tpr = np.r_[0, [(s[y == 1] >= t).mean() for t in thr]]
    fpr = np.r_[0, [(s[y == 0] >= t).mean() for t in thr]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def test_classification_against_independent_formulas():
    rng = np.random.default_rng(7)
    for _ in range(20):
        y = rng.integers(0, 2, 60)
        s = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.25), 0, 1), 1)  # coarse: many ties
        m = classification_metrics(y, s, threshold=0.5)
        pairs = (s[y == 1][:, None] > s[y == 0][None]) + 0.5 * (s[y == 1][:, None] == s[y == 0][None])
        assert m["auc"] == pytest.approx(pairs.mean(), abs=1e-12)
        assert m["auc"] == pytest.approx(_roc_auc_trapezoid(y, s), abs=1e-12)
        yp = (s >= 0.5).astype(int)
        tp, fp = np.sum((yp == 1) & (y == 1)), np.sum((yp == 1) & (y == 0))
        fn = np.sum((yp == 0) & (y == 1))
        prec, rec = tp / (tp + fp), tp / (tp + fn)
        assert m["f1"] == pytest.approx(2 * prec * rec / (prec + rec))
        # MCC as the Pearson correlation of the two 0/1 vectors.
        assert m["mcc"] == pytest.approx(np.corrcoef(y, yp)[0, 1])
        assert m["accuracy"] == pytest.approx(np.mean(yp == y))


def test_classification_perfect_inverted_and_single_class():
    y = np.array([0, 1, 1, 0, 1])
    perfect = classification_metrics(y, y.astype(float))
    assert perfect["mcc"] == 1.0 and perfect["f1"] == 1.0 and perfect["auc"] == 1.0 and perfect["accuracy"] == 1.0
    inverted = classification_metrics(y, 1.0 - y)
    assert inverted["mcc"] == -1.0 and inverted["f1"] == 0.0 and inverted["auc"] == 0.0
    assert inverted["accuracy"] == 0.0
    one = classification_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert math.isnan(one["auc"]) and "only class 1" in one["auc_note"]
    assert one["mcc"] == 0.0 and one["f1"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match=r"y_true must hold only 0 and 1, got values \[0, 1, 2\]"):
        classification_metrics([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"got \(3,\) and \(2,\)"):
        classification_metrics([0, 1, 1], [0.1, 0.2])


def test_evaluate_imports_neither_torch_nor_simpleitk():
    code = "import sys, partus.evaluate; print(sorted({'torch', 'SimpleITK', 'monai'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
