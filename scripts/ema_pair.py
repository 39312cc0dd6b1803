"""Paired judgement of weight averaging (``train.ema``) on the shift-aware blocks CV.

A fold trained with ``train.ema`` keeps two networks of one training trajectory in its last checkpoint:
the moving average (``state_dict``) and the raw last-step weights (``current_model_state``). Both are run
through the same shift-aware evaluation of the fold's held-out block (:func:`partus.train.cv.shift_evaluation`:
plain, the acquisition-shift suite, mirrored), so their difference is the averaging alone, without the
run-to-run noise that separates two trainings (about as large as the effects being judged here).

    python scripts/sweep.py --only mt_ema_blocks --parallel 1 --set train.threads=2   # the CV (~65 min)
    python scripts/ema_pair.py --cv runs/sweep/mt_ema_blocks [--out benchmarks/cv/ema_pair.json]

Both arms use the *last* checkpoint, as the shipped model is the last epoch of its run; the CV's own
``shift.npz`` and summary use ``best.ckpt`` (chosen on the held-out block), so they differ from these.
Each fold's evaluations are cached beside its checkpoint (``shift_last_ema.npz``, ``shift_last_raw.npz``).
``--raw-cv DIR`` also writes the raw arm as a CV folder of its own (``DIR/foldK/checkpoints/last.ckpt``), so
that both arms can go through the shipped ONNX path with the verdict and HSD:

    python scripts/ship_model.py --calibrate-only --cv runs/sweep/mt_ema_blocks       # averaged weights
    python scripts/ship_model.py --calibrate-only --cv runs/sweep/mt_ema_blocks_raw   # raw weights
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from shift_sweep import pool_job  # noqa: E402

from partus.config import Config  # noqa: E402
from partus.train.cv import save_shift, shift_evaluation  # noqa: E402
from partus.train.fit import load_records, split  # noqa: E402
from partus.train.module import LandmarkModule  # noqa: E402

ARMS = {"ema": "state_dict", "raw": "current_model_state"}


def evaluate_fold(fold: Path, ckpt: dict, cfg: Config, records, arms) -> None:
    """``arms`` of ``fold``'s last checkpoint ``ckpt`` (loaded), each through the shift-aware evaluation."""
    k = int(fold.name[4:])
    _, val = split(records, k, cfg.train.folds, cfg.train.seed, cfg.train.split)
    index = {r.name: i for i, r in enumerate(records)}
    module = LandmarkModule(ckpt["hyper_parameters"]["config"])
    for arm in arms:
        module.load_state_dict(ckpt[ARMS[arm]])
        module.eval()
        rep, told = shift_evaluation(module, val, [index[r.name] for r in val], cfg)
        save_shift(fold / f"shift_last_{arm}.npz", rep, told)
        print(f"{fold.name} {arm}: plain AoP MAE {rep['plain']['aop_mae']:.2f}", flush=True)


def write_raw_fold(fold: Path, ckpt: dict, out: Path) -> None:
    """``fold``'s raw last-step weights as a fold of a CV folder of their own (checkpoint + shift file)."""
    import shutil

    from partus.io import atomic_path

    raw = {k: v for k, v in ckpt.items() if k not in ("current_model_state", "averaging_state", "callbacks")}
    raw["state_dict"] = ckpt["current_model_state"]
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "checkpoints" / "last.ckpt") as tmp:
        torch.save(raw, tmp)
    shutil.copy2(fold / "shift_last_raw.npz", out / "shift.npz")


def row(rep: dict) -> dict:
    bands = {b["band"]: (b["mae"], b["bias"]) for b in rep["plain"]["bands"]}
    return {"plain_aop": rep["plain"]["aop_mae"], "plain_mre": rep["plain"]["mre"],
            "shift_aop": rep["shift_mean"]["aop_mae"], "mirrored_aop": rep["mirrored"]["aop_mae"],
            "bands": bands}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cv", type=Path, default=REPO / "runs" / "sweep" / "mt_ema_blocks")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "cv" / "ema_pair.json")
    ap.add_argument("--raw-cv", type=Path, default=None, help="also write the raw arm as a CV folder here")
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), help="evaluate only these")
    ap.add_argument("--folds", type=int, nargs="+", default=None, help="only these finished folds")
    a = ap.parse_args()
    folds = sorted(p for p in a.cv.glob("fold*") if (p / "fold.json").is_file())
    folds = [f for f in folds if a.folds is None or int(f.name[4:]) in a.folds]
    if not folds:
        raise SystemExit(f"no finished fold in {a.cv}")
    stored = json.loads((folds[0] / "fold.json").read_text())["config"]
    cfg = Config.model_validate({**stored, "base_dir": str(REPO / "configs")})  # relative roots: from configs/
    records = load_records(cfg)
    for fold in folds:
        last = fold / "checkpoints" / "last.ckpt"
        todo = [arm for arm in a.arms if not (fold / f"shift_last_{arm}.npz").is_file()
                or (fold / f"shift_last_{arm}.npz").stat().st_mtime < last.stat().st_mtime]  # cached  # fmt: skip
        if not todo and not a.raw_cv:
            continue
        ckpt = torch.load(last, map_location="cpu", weights_only=False)  # once per fold
        if "current_model_state" not in ckpt:
            raise SystemExit(f"{last} was not trained with train.ema: nothing to pair")
        evaluate_fold(fold, ckpt, cfg, records, todo)
        if a.raw_cv:
            write_raw_fold(fold, ckpt, a.raw_cv / fold.name)
    ks = [int(f.name[4:]) for f in folds]
    out = {"cv": str(a.cv.relative_to(REPO) if a.cv.is_relative_to(REPO) else a.cv), "decay": cfg.train.ema,
           "folds": ks, "pooled": {}, "per_fold": {}}  # fmt: skip
    for arm in a.arms:
        out["pooled"][arm] = row(pool_job(a.cv, ks, f"shift_last_{arm}.npz"))
        out["per_fold"][arm] = [row(pool_job(a.cv, [k], f"shift_last_{arm}.npz"))["plain_aop"] for k in ks]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"folds {ks}, decay {cfg.train.ema}")
    for arm, r in out["pooled"].items():
        print(f"{arm:4s} plain AoP {r['plain_aop']:.2f}  MRE {r['plain_mre']:.2f}  shift {r['shift_aop']:.2f}  "
              f"mirrored {r['mirrored_aop']:.2f}  per fold {out['per_fold'][arm]}")  # fmt: skip


if __name__ == "__main__":
    main()
