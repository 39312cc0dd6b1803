"""Paper 1's three-model average, measured: ``transunet_seg`` (TransUNet segmentation -> official rule,
error-weighted fine-tuning) trained with three seeds on the same blocks folds, each fold's final models
exported and averaged by the shipped ONNX path (segmentation probabilities averaged, eq. 4), against the
first seed alone, with the shift-aware evaluation (plain, acquisition-shift suite, mirrored, verdict).

    python scripts/sweep.py --only transunet_seg_blocks@0 transunet_seg_blocks_s1@0 transunet_seg_blocks_s2@0 \\
        --parallel 1 --deadline 9000 --set train.threads=2      # ~35 min per training on 2 CPU cores
    python scripts/paper1_average.py --folds 0     # -> benchmarks/cv/paper1_average.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
RUNS = REPO / "runs" / "sweep"
SEEDS = ["transunet_seg_blocks", "transunet_seg_blocks_s1", "transunet_seg_blocks_s2"]


def _row(name: str, f: dict) -> str:
    pl, sm, mi = f["plain"], f["shift_mean"], f["mirrored"]
    return (f"| {name} | {pl['aop_mae']:.2f} | {pl['mre']:.2f} | {100 * pl['flagged']:.1f} | {sm['aop_mae']:.2f} "
            f"| {100 * sm['flagged']:.1f} | {mi['aop_mae']:.2f} |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, nargs="+", default=[0])
    ap.add_argument("--runs", type=Path, default=RUNS, help="the sweep folder holding the three seeds' CV folders")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "cv" / "paper1_average.json")
    a = ap.parse_args()
    import ship_model

    from partus.io import atomic_write
    from partus.quality import DEFAULT_LIMITS

    dirs = [a.runs / s for s in SEEDS]
    missing = [str(d / f"fold{k}") for d in dirs for k in a.folds if not (d / f"fold{k}" / "fold.json").is_file()]
    if missing:
        sys.exit("unfinished folds (run scripts/sweep.py as in this script's help): " + ", ".join(missing))
    result = {"folds": a.folds, "members": SEEDS}
    for name, members in [("seed 0 alone", dirs[:1]), ("seed 1 alone", dirs[1:2]), ("seed 2 alone", dirs[2:]),
                          ("three-model average", dirs)]:  # fmt: skip
        f = ship_model.figures(ship_model.collect(members if len(members) > 1 else members[0], a.folds),
                               DEFAULT_LIMITS, per_fold=False)  # fmt: skip
        result[name] = {k: f[k] for k in ("plain", "shift_mean", "mirrored", "hsd_mae", "reasons")}
    atomic_write(a.out, json.dumps(result, indent=1, default=str) + "\n")
    head = ["model", "AoP MAE deg", "MRE px", "flagged %", "shift-suite AoP MAE deg", "shift flagged %",
            "mirrored AoP MAE deg"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|---|---|---|")
    for name in ("seed 0 alone", "seed 1 alone", "seed 2 alone", "three-model average"):
        print(_row(name, result[name]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
