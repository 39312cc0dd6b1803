"""Shift-aware evaluation (partus.robustness) against hand-made numbers and oracle predictors."""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest

from partus.data.records import load_phantoms
from partus.data.shift import SHIFTS, apply_shift, mirror
from partus.geometry import angle_of_progression
from partus.robustness import (
    AOP_BANDS,
    band_table,
    jsonable,
    markdown_tables,
    pool,
    shift_aware_report,
    summarise,
    variant_metrics,
)

PS1, PS2 = np.array([100.0, 100.0]), np.array([60.0, 100.0])  # PS2 - PS1 points left (angle 180 deg)


def _with_aop(deg: float, radius: float = 50.0) -> np.ndarray:
    """Landmarks whose AoP is ``deg`` (FH1 below-right of PS1, y down)."""
    t = math.radians(180.0 - deg)
    return np.array([PS1, PS2, PS1 + radius * np.array([math.cos(t), math.sin(t)])])


def _exactly(deg: float) -> np.ndarray:
    """Landmarks whose computed AoP is exactly ``deg`` in floating point (searched over radii)."""
    for radius in np.arange(20.0, 80.0, 0.25):
        p = _with_aop(deg, radius)
        if angle_of_progression(*p) == deg:
            return p
    raise AssertionError(f"no radius gives exactly {deg}")


def _aop(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, float)
    return angle_of_progression(p[:, 0], p[:, 1], p[:, 2])


# --------------------------------------------------------------------------- band table
def test_bands_are_the_documented_ones():
    assert [b[0] for b in AOP_BANDS] == ["<90", "90-110", "110-130", ">=130"]


def test_band_edges_go_to_the_upper_band():
    gt = np.stack([_exactly(90.0), _exactly(110.0), _exactly(130.0), _with_aop(89.9), _with_aop(129.9)])
    assert _aop(gt)[:3].tolist() == [90.0, 110.0, 130.0]
    rows = {r["band"]: r for r in band_table(gt, gt)}
    assert {k: r["n"] for k, r in rows.items()} == {"<90": 1, "90-110": 1, "110-130": 2, ">=130": 1}
    assert all(r["mae"] == 0.0 and r["bias"] == 0.0 for r in rows.values())


def test_band_mae_and_bias_against_numpy():
    rng = np.random.default_rng(0)
    gt_deg = np.array([70, 80, 95, 100, 105, 115, 120, 125, 135, 150, 160.0])
    gt = np.stack([_with_aop(d) for d in gt_deg])
    pred_deg = gt_deg + rng.normal(0, 6, len(gt_deg))
    pred = np.stack([_with_aop(d, 40.0) for d in pred_deg])
    signed = _aop(pred) - _aop(gt)
    np.testing.assert_allclose(signed, pred_deg - gt_deg, atol=1e-9)
    rows = band_table(pred, gt)
    for row, (_, lo, hi) in zip(rows, AOP_BANDS, strict=True):
        sel = (gt_deg >= lo) & (gt_deg < hi)
        assert row["n"] == sel.sum()
        assert row["mae"] == pytest.approx(np.abs(signed[sel]).mean(), abs=5e-4)
        assert row["bias"] == pytest.approx(signed[sel].mean(), abs=5e-4)


def test_band_table_leaves_out_missing_and_empty_bands():
    gt = np.stack([_with_aop(100), _with_aop(105)])
    pred = gt.copy()
    pred[1] = np.nan
    rows = {r["band"]: r for r in band_table(pred, gt)}
    assert rows["90-110"] == {"band": "90-110", "n": 1, "mae": 0.0, "bias": 0.0}
    assert rows["<90"] == {"band": "<90", "n": 0, "mae": None, "bias": None}


# --------------------------------------------------------------------------- variant metrics
def _case():
    gt = np.stack([_with_aop(d) for d in (95, 112, 128, 140)])
    pred = gt.copy()
    pred[:, 2, 0] += [3.0, -4.0, 0.0, 6.0]  # FH1 moved along x
    pred[:, 0, 1] += [0.0, 1.0, 2.0, 0.0]  # PS1 moved along y
    return pred, gt


def test_variant_metrics_against_numpy():
    pred, gt = _case()
    m = variant_metrics(pred, gt)
    err = np.linalg.norm(pred - gt, axis=-1)
    signed = _aop(pred) - _aop(gt)
    assert m["n"] == 4 and m["missing"] == 0
    assert m["mre"] == pytest.approx(err.mean(), abs=5e-4)
    assert m["fh1"] == pytest.approx(err[:, 2].mean(), abs=5e-4)
    assert m["aop_mae"] == pytest.approx(np.abs(signed).mean(), abs=5e-4)
    assert m["aop_median"] == pytest.approx(np.median(np.abs(signed)), abs=5e-4)
    assert m["aop_bias"] == pytest.approx(signed.mean(), abs=5e-4)
    assert "flagged" not in m


def test_variant_metrics_counts_and_excludes_missing():
    pred, gt = _case()
    pred[1] = np.nan
    pred[3, 2] = np.nan  # one missing landmark makes the scan missing
    m = variant_metrics(pred, gt)
    keep = [0, 2]
    ref = variant_metrics(pred[keep], gt[keep])
    assert m["missing"] == 2 and m["n"] == 4
    assert {k: m[k] for k in ("mre", "fh1", "aop_mae", "aop_median", "aop_bias")} == {
        k: ref[k] for k in ("mre", "fh1", "aop_mae", "aop_median", "aop_bias")
    }
    allnan = variant_metrics(np.full_like(gt, np.nan), gt)
    assert allnan["missing"] == 4 and allnan["mre"] is None and allnan["aop_mae"] is None


def test_variant_metrics_with_verdicts():
    pred, gt = _case()
    ok = np.array([True, False, True, False])
    m = variant_metrics(pred, gt, ok)
    ae = np.abs(_aop(pred) - _aop(gt))
    assert m["flagged"] == 0.5
    assert m["aop_mae_kept"] == pytest.approx(ae[ok].mean(), abs=5e-4)
    assert m["aop_mae_flagged"] == pytest.approx(ae[~ok].mean(), abs=5e-4)
    pred[1] = np.nan  # a missing scan counts in flagged but not in the flagged MAE
    m = variant_metrics(pred, gt, ok)
    assert m["flagged"] == 0.5
    assert m["aop_mae_flagged"] == pytest.approx(ae[3], abs=5e-4)
    none_flagged = variant_metrics(pred, gt, np.ones(4, bool))
    assert none_flagged["flagged"] == 0.0 and none_flagged["aop_mae_flagged"] is None


# --------------------------------------------------------------------------- whole report
N = 6
SEED = 3


@pytest.fixture(scope="module")
def phantoms():
    recs = load_phantoms(N, seed=4, size=96)
    return [r.image for r in recs], np.stack([r.points for r in recs])


def _truth_table(images, points, indices, seed=SEED):
    """image bytes -> ground-truth points of every copy the report will make (same calls, same seeds)."""
    table = {}
    for im, pt, i in zip(images, points, indices, strict=True):
        copies = [(im, pt)] + [
            (s.image, s.points) for s in (apply_shift(n, im, pt, seed=seed, index=i) for n in SHIFTS)
        ]
        m = mirror(im, pt)
        copies.append((m.image, m.points))
        for img, p in copies:
            key = img.tobytes()
            assert key not in table or np.array_equal(table[key], p), "two copies with different truths collide"
            table[key] = p
    return table


def _oracle(table, noise=0.0):
    """Predicts the ground truth (plus a deterministic per-image perturbation of size ``noise``)."""

    def predict(images):
        out = []
        for im in images:
            p = np.array(table[im.tobytes()], float)
            if noise:
                p = p + np.random.default_rng(zlib.crc32(im.tobytes())).normal(0, noise, p.shape)
            out.append(p)
        pts = np.stack(out) if out else np.zeros((0, 3, 2))
        ok = np.array([zlib.crc32(im.tobytes()) % 3 != 0 for im in images], bool)
        return pts, ok

    return predict


def test_oracle_gives_zero_error_everywhere(phantoms):
    images, points = phantoms
    rep = shift_aware_report(_oracle(_truth_table(images, points, range(N))), images, points, seed=SEED)
    assert set(rep["shifts"]) == set(SHIFTS)
    variants = [rep["plain"], rep["mirrored"], *rep["shifts"].values()]
    for m in variants:
        assert m["aop_mae"] == 0.0 and m["mre"] == 0.0 and m["aop_bias"] == 0.0 and m["missing"] == 0
    assert rep["plain"]["n"] == N and rep["mirrored"]["n"] == N
    assert sum(b["n"] for b in rep["plain"]["bands"]) == N
    assert rep["shift_mean"]["aop_mae"] == 0.0
    for name in SHIFTS:
        pred, gt, ok = rep["raw"][name]
        assert np.array_equal(pred, gt) and len(ok) == len(gt)


def test_invalid_copies_are_left_out_of_a_shift(phantoms):
    images, points = phantoms
    pts = points.copy()
    pts[0, 2] = [95.0, 50.0]  # FH1 at the right edge of image 0: zoom_in pushes it out
    table = _truth_table(images, pts, range(N))
    rep = shift_aware_report(_oracle(table), images, pts, seed=SEED, shifts=["zoom_in", "blur"])
    assert list(rep["shifts"]) == ["zoom_in", "blur"]
    assert rep["shifts"]["zoom_in"]["n"] == N - 1 and rep["shifts"]["blur"]["n"] == N
    assert rep["shifts"]["zoom_in"]["aop_mae"] == 0.0


def test_unmirrored_points_show_as_the_mirrored_error(phantoms):
    images, points = phantoms
    table = _truth_table(images, points, range(N))
    # Knows the mirrored copies only (a call on any other image fails) and returns the points unmirrored.
    naive = {mirror(im, pt).image.tobytes(): pt for im, pt in zip(images, points, strict=True)}

    def predict_naive(imgs):
        return np.stack([naive[im.tobytes()] for im in imgs]), None

    rep = shift_aware_report(_oracle(table), images, points, seed=SEED, predict_mirrored=predict_naive, shifts=[])
    assert rep["plain"]["mre"] == 0.0 and rep["shifts"] == {} and "shift_mean" not in rep
    w = images[0].shape[1]
    expected = np.abs(2 * points[..., 0] - (w - 1))  # |x - (w - 1 - x)| per landmark
    assert rep["mirrored"]["mre"] == pytest.approx(expected.mean(), abs=5e-4)
    assert rep["mirrored"]["fh1"] == pytest.approx(expected[:, 2].mean(), abs=5e-4)
    assert rep["mirrored"]["mre"] > 10
    # A left-right flip keeps the angle: the AoP of un-mirrored points is still right.
    assert rep["mirrored"]["aop_mae"] == 0.0


def test_pool_of_two_halves_equals_the_whole(phantoms):
    images, points = phantoms
    table = _truth_table(images, points, range(N))
    predict = _oracle(table, noise=2.0)
    whole = shift_aware_report(predict, images, points, seed=SEED)
    k = N // 2
    halves = [
        shift_aware_report(predict, images[:k], points[:k], seed=SEED, indices=range(k)),
        shift_aware_report(predict, images[k:], points[k:], seed=SEED, indices=range(k, N)),
    ]
    pooled = pool(halves)
    assert jsonable(pooled) == jsonable(whole)
    assert whole["plain"]["aop_mae"] > 0 and whole["plain"]["flagged"] is not None
    for name, (p, g, ok) in whole["raw"].items():
        assert np.array_equal(pooled["raw"][name][0], p) and np.array_equal(pooled["raw"][name][1], g)
        assert np.array_equal(pooled["raw"][name][2], ok)


def test_indices_seed_the_shifts(phantoms):
    """Without the global indices the second half gets other shifted copies (the oracle cannot know them)."""
    images, points = phantoms
    table = _truth_table(images, points, range(N))
    with pytest.raises(KeyError):
        shift_aware_report(_oracle(table), images[3:], points[3:], seed=SEED, shifts=["speckle"])


def test_summarise_shift_mean_and_worst():
    pred, gt = _case()
    slightly = gt.copy()
    slightly[:, 2, 1] += 0.5  # FH1 half a pixel lower: a small, non-zero AoP error
    good = (slightly, gt, None)
    bad = (pred, gt, None)
    rep = summarise({"plain": (gt.copy(), gt, None), "a": good, "b": bad, "mirrored": (gt.copy(), gt, None)})
    ma, mb = variant_metrics(*good), variant_metrics(*bad)
    assert 0 < ma["aop_mae"] < mb["aop_mae"]
    assert rep["shift_mean"]["aop_mae"] == pytest.approx((ma["aop_mae"] + mb["aop_mae"]) / 2, abs=1e-3)
    assert rep["shift_mean"]["mre"] == pytest.approx((ma["mre"] + mb["mre"]) / 2, abs=1e-3)
    assert rep["shift_mean"]["worst"] == "b"
    assert "flagged" not in rep["shift_mean"]


def test_summarise_worst_is_not_a_perfect_shift():
    """A shift with AoP MAE exactly 0 must not be reported as the worst one."""
    pred, gt = _case()
    rep = summarise({"plain": (gt.copy(), gt, None), "perfect": (gt.copy(), gt, None), "bad": (pred, gt, None)})
    assert rep["shifts"]["perfect"]["aop_mae"] == 0.0 and rep["shifts"]["bad"]["aop_mae"] > 1
    assert rep["shift_mean"]["worst"] == "bad"


def test_jsonable_and_markdown(phantoms):
    images, points = phantoms
    rep = shift_aware_report(_oracle(_truth_table(images, points, range(N)), noise=1.0), images, points, seed=SEED)
    js = jsonable(rep)
    assert "raw" not in js and "raw" in rep and set(js) == {"plain", "shifts", "shift_mean", "mirrored"}
    json.dumps(js, allow_nan=False)  # plain JSON: no arrays, no NaN
    md = markdown_tables(rep, "fold pool")
    assert md.startswith("**fold pool**") and md.endswith("\n")
    for name in SHIFTS:
        assert f"| {name} |" in md
    for label, _, _ in AOP_BANDS:
        assert f"| {label} |" in md
    assert "| mirrored (anatomical labels) |" in md and "flagged %" in md
    assert f"worst shift: {rep['shift_mean']['worst']}." in md
    plain_row = next(line for line in md.splitlines() if line.startswith("| plain |"))
    assert f"| {rep['plain']['mre']:.2f} |" in plain_row and f"| {N} |" in plain_row
    no_flags = markdown_tables(summarise({k: (p, g, None) for k, (p, g, _) in rep["raw"].items()}))
    assert "flagged" not in no_flags and not no_flags.startswith("**")


def test_a_shift_that_leaves_no_valid_copy_is_reported_empty():
    """One scan whose FH1 lies at the right edge: zoom_in has no valid copy; the report must not crash."""
    img = np.zeros((96, 96), np.uint8)
    pts = np.array([[40.0, 30.0], [20.0, 35.0], [95.0, 50.0]])

    def predict(images):
        return (np.stack([pts] * len(images)) if images else np.zeros((0, 3, 2))), None

    rep = shift_aware_report(predict, [img], pts[None], shifts=["zoom_in", "blur"])
    assert rep["shifts"]["zoom_in"]["n"] == 0 and rep["shifts"]["zoom_in"]["aop_mae"] is None
    assert rep["shifts"]["blur"]["n"] == 1
