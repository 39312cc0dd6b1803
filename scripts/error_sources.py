"""Where does the AoP error come from? Out-of-fold, per ground-truth AoP band, on a CV folder's plain scans.

    python scripts/error_sources.py [--cv runs/sweep/mt_strong_blocks] [--file shift.npz]

The AoP is recomputed with one landmark group predicted and the others annotated: the symphysis endpoints
(PS1 + PS2, i.e. the axis), PS1 alone, PS2 alone, FH1 alone. Also the symphysis axis's direction error
(degrees, signed: positive = the predicted axis is turned towards larger angles in image coordinates).

    python scripts/error_sources.py --mask-axis [--data ../shared/data/psfhs-dev]
        # could the PS mask's principal axis replace the endpoints? Its angle to the *annotated* axis.
    python scripts/error_sources.py --rows --cv runs/sweep/mt_ema_refine_blocks
        # the same table through the shipped ONNX path (the CV's ship_rows.pkl: refiner included, no verdict),
        # with the bias of the highest band per fold
    python scripts/error_sources.py --hsd runs/sweep/mt_nofan_blocks runs/sweep/mt_strong_blocks
        # HSD error of two CVs through the shipped ONNX path (their ship_rows.pkl), on the scans both measure
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from partus.geometry import angle_of_progression as aop

REPO = Path(__file__).resolve().parents[1]
BANDS = ((0, 90), (90, 110), (110, 130), (130, 181), (0, 181))


def mask_axis(data: Path) -> None:
    """Angle between the annotated PS mask's principal axis and the annotated PS1 -> PS2 direction."""
    from partus.conventions import PS
    from partus.data.records import load_psfhs

    turns, elong, aop_err = [], [], []
    for r in load_psfhs(data):
        ys, xs = np.nonzero(r.mask == PS)
        pts = np.stack([xs, ys], 1).astype(float)
        w, v = np.linalg.eigh(np.cov(pts.T))
        u = r.points[1] - r.points[0]
        d = v[:, -1] if v[:, -1] @ u >= 0 else -v[:, -1]
        turns.append((np.degrees(np.arctan2(d[1], d[0]) - np.arctan2(u[1], u[0])) + 180) % 360 - 180)
        elong.append(np.sqrt(w[-1] / w[0]))
        ps2 = r.points[0] + d * np.linalg.norm(u)  # the axis turned onto the mask's, same vertex and length
        aop_err.append(aop(r.points[0], ps2, r.points[2]) - aop(*r.points))
    t = np.abs(turns)
    print(f"{len(t)} annotated scans: the PS mask's principal axis is {t.mean():.2f}° (median {np.median(t):.2f}, "
          f"90th percentile {np.percentile(t, 90):.2f}) from the annotated axis; length/width "
          f"{np.median(elong):.2f} (median); AoP with that axis: MAE {np.abs(aop_err).mean():.2f}°")  # fmt: skip


def hsd(cvs: list[Path]) -> None:
    """HSD error (px) of CV folders through the shipped path, on the scans every one of them measures."""
    import pickle

    errs = []
    for cv in cvs:
        rows = [r for f in sorted(cv.glob("fold*/ship_rows.pkl")) for r in pickle.loads(f.read_bytes())["rows"]]
        errs.append({r["name"]: (r["hsd"] - r["gt_hsd"], r["fold"]) for r in rows
                     if r["variant"] == "plain" and np.isfinite(r["hsd"])})  # fmt: skip
    common = sorted(set.intersection(*(set(e) for e in errs)))
    for cv, e in zip(cvs, errs, strict=True):
        d = np.array([e[n][0] for n in common])
        k = np.array([e[n][1] for n in common])
        print(f"{cv.name:28s} {len(common)} scans: HSD MAE {np.abs(d).mean():.2f} px (bias {d.mean():+.2f}); "
              f"blocks 0-3 {np.abs(d[k != 4]).mean():.2f}, block 4 {np.abs(d[k == 4]).mean():.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cv", type=Path, default=REPO / "runs" / "sweep" / "mt_strong_blocks")
    ap.add_argument("--file", default="shift.npz", help="per-fold evaluation file (e.g. shift_last_ema.npz)")
    ap.add_argument("--mask-axis", action="store_true", help="annotated mask axis vs annotated endpoints")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "psfhs-dev")
    ap.add_argument("--hsd", type=Path, nargs="+", default=None, help="CV folders with ship_rows.pkl")
    ap.add_argument("--rows", action="store_true", help="read the CV's ship_rows.pkl (plain scans) instead")
    a = ap.parse_args()
    if a.mask_axis:
        return mask_axis(a.data)
    if a.hsd:
        return hsd(a.hsd)
    files = sorted(a.cv.glob("fold*/ship_rows.pkl" if a.rows else f"fold*/{a.file}"))
    if not files:
        raise SystemExit(f"no fold*/{'ship_rows.pkl' if a.rows else a.file} in {a.cv}")
    if a.rows:
        import pickle

        rows = [r for f in files for r in pickle.loads(f.read_bytes())["rows"] if r["variant"] == "plain"]
        nan = np.full((3, 2), np.nan)
        pred = np.stack([nan if r["pred"] is None else r["pred"] for r in rows])
        gt = np.stack([r["gt"] for r in rows])
        fold = np.array([r["fold"] for r in rows])
    else:
        pred = np.concatenate([np.load(f)["pred_plain"] for f in files])
        gt = np.concatenate([np.load(f)["gt_plain"] for f in files])
    ok = np.isfinite(pred).all(axis=(1, 2))
    p, g = pred[ok], gt[ok]
    truth = aop(g[:, 0], g[:, 1], g[:, 2])
    mixes = {
        "all predicted": (p[:, 0], p[:, 1], p[:, 2]),
        "PS1+PS2": (p[:, 0], p[:, 1], g[:, 2]),
        "PS1": (p[:, 0], g[:, 1], g[:, 2]),
        "PS2": (g[:, 0], p[:, 1], g[:, 2]),
        "FH1": (g[:, 0], g[:, 1], p[:, 2]),
    }
    errs = {k: aop(*v) - truth for k, v in mixes.items()}
    u_p, u_g = p[:, 1] - p[:, 0], g[:, 1] - g[:, 0]
    turn = np.degrees(np.arctan2(u_p[:, 1], u_p[:, 0]) - np.arctan2(u_g[:, 1], u_g[:, 0]))
    turn = (turn + 180) % 360 - 180
    print(f"{a.cv} ({len(files)} folds, {ok.sum()} scans with points): AoP MAE ° (signed bias) with only ... predicted")
    print(f"{'band':9s} {'n':>4s}  " + "  ".join(f"{k:>16s}" for k in errs) + "  axis turn ° (bias)")
    for lo, hi in BANDS:
        m = (truth >= lo) & (truth < hi)
        if not m.any():
            continue
        cells = "  ".join(f"{np.abs(e[m]).mean():7.2f} ({e[m].mean():+6.2f})" for e in errs.values())
        name = "all" if (lo, hi) == (0, 181) else f"{lo}-{hi}" if hi < 181 else f">={lo}"
        print(f"{name:9s} {m.sum():4d}  {cells}  {np.abs(turn[m]).mean():5.2f} ({turn[m].mean():+5.2f})")
    if a.rows:  # is the high-angle bias a fold's lack of such scans in training, or everywhere?
        high, e = truth >= 130, errs["all predicted"]
        cells = [f"fold {k}: {(high & (fold[ok] == k)).sum()} scans, {e[high & (fold[ok] == k)].mean():+.2f}"
                 for k in np.unique(fold) if (high & (fold[ok] == k)).any()]  # fmt: skip
        print("bias at >= 130° by held-out fold: " + "; ".join(cells))
        recalibrated(truth, aop(p[:, 0], p[:, 1], p[:, 2]), fold[ok])


def recalibrated(truth: np.ndarray, pred: np.ndarray, fold: np.ndarray) -> None:
    """Would a linear correction of the AoP undo the band biases? Cross-fitted: each fold's correction
    (truth ~ c * pred + d, least squares) is fitted on the other folds' held-out rows."""
    if len(np.unique(fold)) < 2:
        return print("a cross-fitted correction needs two folds or more")
    fixed = np.empty_like(pred)
    for k in np.unique(fold):
        c, d = np.polyfit(pred[fold != k], truth[fold != k], 1)
        fixed[fold == k] = c * pred[fold == k] + d
    within = " / ".join(f"{np.polyfit(truth[fold == k], pred[fold == k], 1)[0]:.2f}" for k in np.unique(fold))
    print(f"slope of the predicted AoP on the annotated one {np.polyfit(truth, pred, 1)[0]:.2f} (per fold {within}); "
          f"of the annotated on the predicted {np.polyfit(pred, truth, 1)[0]:.2f}")  # fmt: skip
    print(f"a cross-fitted linear correction: AoP MAE {np.abs(fixed - truth).mean():.2f}° "
          f"(uncorrected {np.abs(pred - truth).mean():.2f}°)")  # fmt: skip


if __name__ == "__main__":
    main()
