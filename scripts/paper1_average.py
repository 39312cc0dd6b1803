"""Paper 1's three-model average, measured: ``transunet_seg`` (TransUNet segmentation -> official rule,
error-weighted fine-tuning) trained with three seeds on the same blocks folds, each fold's final models
exported and averaged by the shipped ONNX path (segmentation probabilities averaged, eq. 4), against the
first seed alone, with the shift-aware evaluation (plain, acquisition-shift suite, mirrored, verdict).

    python scripts/sweep.py --only transunet_seg_blocks@0 transunet_seg_blocks_s1@0 transunet_seg_blocks_s2@0 \\
        --parallel 1 --deadline 9000 --set train.threads=2      # ~35 min per training on 2 CPU cores
    python scripts/paper1_average.py --folds 0     # -> benchmarks/cv/paper1_average.json

Folds trained in different sessions (``runs/`` does not outlive one) are pooled from their result files:

    python scripts/paper1_average.py --merge A.json B.json --out C.json

The merge weights each part's means by its scan counts: exact for the error means (weighted by scans with
points), the flagged shares and the bands; the kept / flagged errors and the shift-suite mean are weighted
by all scans, exact where every scan has points; medians cannot be pooled that way and are left out.
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


def _weighted(parts: list[dict], key: str, weight, digits: int = 3) -> float | None:
    pairs = [(p[key], weight(p)) for p in parts if p.get(key) is not None and weight(p) > 0]
    total = sum(w for _, w in pairs)
    return round(sum(v * w for v, w in pairs) / total, digits) if total else None


def _pool_variant(parts: list[dict]) -> dict:
    def have(p):
        return p["n"] - p["missing"]

    out = {"n": sum(p["n"] for p in parts), "missing": sum(p["missing"] for p in parts), "aop_median": None}
    for key in ("mre", "fh1", "aop_mae", "aop_bias"):
        out[key] = _weighted(parts, key, have)
    if all("flagged" in p for p in parts):
        out["flagged"] = _weighted(parts, "flagged", lambda p: p["n"], 4)
        out["aop_mae_kept"] = _weighted(parts, "aop_mae_kept", lambda p: have(p) * (1 - p["flagged"]))
        out["aop_mae_flagged"] = _weighted(parts, "aop_mae_flagged", lambda p: p["n"] * p["flagged"])
    if all("bands" in p for p in parts):
        out["bands"] = []
        for i, band in enumerate(parts[0]["bands"]):
            bs = [p["bands"][i] for p in parts]
            assert all(b["band"] == band["band"] for b in bs), "parts with different AoP bands"
            out["bands"].append({"band": band["band"], "n": sum(b["n"] for b in bs),
                                 "mae": _weighted(bs, "mae", lambda b: b["n"]),
                                 "bias": _weighted(bs, "bias", lambda b: b["n"])})  # fmt: skip
    return out


def merge(results: list[dict]) -> dict:
    """One result from several runs of this script on disjoint folds (figures weighted by scan counts)."""
    folds = [k for r in results for k in r["folds"]]
    if len(set(folds)) < len(folds):
        raise ValueError(f"the parts share folds: {sorted(folds)}")
    out = {"folds": sorted(folds), "members": results[0]["members"], "pooled_from": [r["folds"] for r in results]}
    for name in ("seed 0 alone", "seed 1 alone", "seed 2 alone", "three-model average"):
        parts = [r[name] for r in results]
        shifts = [p["shift_mean"] | {"hsd_mae": p["hsd_mae"], "n": p["plain"]["n"]} for p in parts]
        shift = {k: _weighted(shifts, k, lambda p: p["n"], d) for k, d in (("aop_mae", 3), ("mre", 3), ("flagged", 4))}
        shift["worst"] = [p["shift_mean"]["worst"] for p in parts]
        reasons: dict[str, int] = {}
        for p in parts:
            for why, count in p["reasons"].items():
                reasons[why] = reasons.get(why, 0) + count
        out[name] = {"plain": _pool_variant([p["plain"] for p in parts]), "shift_mean": shift,
                     "mirrored": _pool_variant([p["mirrored"] for p in parts]),
                     "hsd_mae": _weighted(shifts, "hsd_mae", lambda p: p["n"]),
                     "reasons": reasons}  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, nargs="+", default=[0])
    ap.add_argument("--runs", type=Path, default=RUNS, help="the sweep folder holding the three seeds' CV folders")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "cv" / "paper1_average.json")
    ap.add_argument("--merge", type=Path, nargs="+", help="pool these result files (disjoint folds) instead")
    a = ap.parse_args()
    from partus.io import atomic_write

    if a.merge:
        result = merge([json.loads(f.read_text()) for f in a.merge])
        atomic_write(a.out, json.dumps(result, indent=1) + "\n")
        _print(result)
        return 0
    import ship_model

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
    _print(result)
    return 0


def _print(result: dict) -> None:
    head = ["model", "AoP MAE deg", "MRE px", "flagged %", "shift-suite AoP MAE deg", "shift flagged %",
            "mirrored AoP MAE deg"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|---|---|---|")
    for name in ("seed 0 alone", "seed 1 alone", "seed 2 alone", "three-model average"):
        print(_row(name, result[name]))


if __name__ == "__main__":
    raise SystemExit(main())
