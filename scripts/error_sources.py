"""Where does the AoP error come from? Out-of-fold, per ground-truth AoP band, on a CV folder's plain scans.

    python scripts/error_sources.py [--cv runs/sweep/mt_strong_blocks] [--file shift.npz]

The AoP is recomputed with one landmark group predicted and the others annotated: the symphysis endpoints
(PS1 + PS2, i.e. the axis), PS1 alone, PS2 alone, FH1 alone. Also the symphysis axis's direction error
(degrees, signed: positive = the predicted axis is turned towards larger angles in image coordinates).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from partus.geometry import angle_of_progression as aop

REPO = Path(__file__).resolve().parents[1]
BANDS = ((0, 90), (90, 110), (110, 130), (130, 181), (0, 181))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cv", type=Path, default=REPO / "runs" / "sweep" / "mt_strong_blocks")
    ap.add_argument("--file", default="shift.npz", help="per-fold evaluation file (e.g. shift_last_ema.npz)")
    a = ap.parse_args()
    files = sorted(a.cv.glob(f"fold*/{a.file}"))
    if not files:
        raise SystemExit(f"no fold*/{a.file} in {a.cv}")
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


if __name__ == "__main__":
    main()
