"""Pool the shift-aware results of a sweep (``scripts/sweep.py``) into ``benchmarks/cv/shift_sweep.json``.

    python benchmarks/shift_sweep.py [--runs runs/sweep] [--out benchmarks/cv/shift_sweep.json]

Each job's finished folds (``foldK/shift.npz``, written by ``partus cv``) are pooled; the JSON records
which folds, so a partial sweep is reported as partial. Compare two jobs only on the folds both have:
``--common`` restricts every job to the folds that all jobs sharing its config prefix finished (e.g.
``seg_unet_blocks`` and ``seg_unet_grouped``). ``benchmarks/accuracy.py`` renders the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def pool_job(job: Path, folds: list[int] | None = None, name: str = "shift.npz") -> dict | None:
    """Pooled shift-aware summary of ``job``'s finished folds (or of ``folds`` among them); ``name``: the
    per-fold file (``shift.npz``, written by ``partus cv``, or another evaluation of the same folds)."""
    from partus.robustness import jsonable, summarise, variant_metrics

    files = sorted(job.glob(f"fold*/{name}"))
    if folds is not None:
        files = [f for f in files if int(f.parent.name[4:]) in folds]
    if not files:
        return None
    raw: dict[str, list] = {}
    told: list[list] = [[], [], []]
    for f in files:
        z = np.load(f)
        for v in [k[5:] for k in z.files if k.startswith("pred_")]:
            raw.setdefault(v, [[], []])
            raw[v][0].append(z[f"pred_{v}"])
            raw[v][1].append(z[f"gt_{v}"])
        for i, k in enumerate(("told_pred", "told_gt", "p_mirror")):
            told[i].append(z[k])
    rep = jsonable(summarise({v: (np.concatenate(p), np.concatenate(g), None) for v, (p, g) in raw.items()}))
    rep["mirrored_told"] = variant_metrics(np.concatenate(told[0]), np.concatenate(told[1]))
    rep["false_flip_rate"] = float(np.mean(np.concatenate(told[2]) > 0.5))
    rep["folds"] = [int(f.parent.name[4:]) for f in files]
    return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "sweep")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "cv" / "shift_sweep.json")
    ap.add_argument("--common", action="store_true", help="pool each protocol pair on their common folds")
    ap.add_argument("--folds", type=int, nargs="*", default=None, help="pool only these folds")
    a = ap.parse_args()
    jobs = sorted(p for p in a.runs.iterdir() if p.is_dir() and any(p.glob("fold*/shift.npz")))
    done = {j.name: {int(f.parent.name[4:]) for f in j.glob("fold*/shift.npz")} for j in jobs}
    out = {}
    for j in jobs:
        folds = a.folds
        if a.common:
            stem = j.name.rsplit("_", 1)[0]
            peers = [n for n in done if n.rsplit("_", 1)[0] == stem]
            folds = sorted(set.intersection(*(done[n] for n in peers)) & set(a.folds or done[j.name]))
        rep = pool_job(j, folds)
        if rep is not None:
            out[j.name] = rep
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    for name, r in out.items():
        print(f"{name:34s} folds {r['folds']}  plain AoP {r['plain']['aop_mae']}  shift {r['shift_mean']['aop_mae']}  "
              f"mirrored {r['mirrored']['aop_mae']}  told {r['mirrored_told']['aop_mae']}")  # fmt: skip


if __name__ == "__main__":
    main()
