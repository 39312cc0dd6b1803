"""Paired test of an AoP term as a short fine-tuning stage of trained networks (the step named next in
benchmarks/ACCURACY.md, "An AoP term in the loss": points already in place, a small fixed weight outside the
dynamic loss scaling).

Every blocks fold of a finished CV (default: the shipped config's, ``runs/sweep/mt_ema_blocks``) is fine-tuned
from its last checkpoint twice, identically but for the term: ``control`` (no AoP term) and ``aop``
(``loss.aop_weight`` W with ``loss.aop_dynamic: false``). The start network (its ``shift_last_ema.npz``, written
by ``scripts/ema_pair.py``) and both arms' last checkpoints go through the same shift-aware evaluation of the
held-out block, so the differences are the stage and the term, without the run-to-run noise of new trainings.

    python scripts/aop_finetune.py [--cv runs/sweep/mt_ema_blocks] [--out runs/aop_ft] [--epochs 6]
                                   [--lr 1e-4] [--weight 0.1] [--folds 0 1 2 3 4] [--arms control aop]

Resumable: a fold-arm with its ``shift_last.npz`` is done; an interrupted one resumes from its last
checkpoint. Writes ``benchmarks/cv/aop_finetune.json`` from the finished fold-arms.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from ema_pair import row  # noqa: E402  (the same summary row as the weight-averaging pair)
from shift_sweep import pool_job  # noqa: E402

from partus.config import Config  # noqa: E402
from partus.train.cv import save_shift, shift_evaluation  # noqa: E402
from partus.train.fit import fit, load_records  # noqa: E402
from partus.train.module import LandmarkModule  # noqa: E402

BASE = "shift_last_ema.npz"  # the start network, evaluated by scripts/ema_pair.py
DONE = "shift_last.npz"


def arm_config(stored: dict, arm: str, a: argparse.Namespace) -> Config:
    d = copy.deepcopy(stored)
    d["base_dir"] = str(REPO / "configs")  # relative data roots resolve as in the CV
    d["train"].update(epochs=a.epochs, lr=a.lr, ema=a.ema, early_stopping_patience=0, val_every=a.epochs,
                      threads=a.threads)  # fmt: skip
    d["loss"].update(aop_weight=a.weight if arm == "aop" else 0.0, aop_dynamic=False)
    d["model"]["encoder_weights"] = None  # the fold's trained weights are the start
    return Config.model_validate(d)


def run_fold_arm(fold: Path, arm: str, out: Path, records, a: argparse.Namespace) -> None:
    last = out / "checkpoints" / "last.ckpt"
    if (out / DONE).is_file() and last.is_file() and (out / DONE).stat().st_mtime >= last.stat().st_mtime:
        return
    k = int(fold.name[4:])
    stored = json.loads((fold / "fold.json").read_text())["config"]
    cfg = arm_config(stored, arm, a)
    start = torch.load(fold / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    init = {n[len("model.") :]: v for n, v in start.items() if n.startswith("model.")}
    res = fit(cfg, out, fold=k, records=records, init=init, progress=False)
    module = LandmarkModule.load_from_checkpoint(last, map_location="cpu")  # the last epoch, as shipped
    module.eval()
    index = {r.name: i for i, r in enumerate(records)}
    rep, told = shift_evaluation(module, res.val_records, [index[r.name] for r in res.val_records], cfg)
    save_shift(out / DONE, rep, told)
    print(f"{fold.name} {arm}: plain AoP MAE {rep['plain']['aop_mae']:.2f} ({res.seconds / 60:.1f} min)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cv", type=Path, default=REPO / "runs" / "sweep" / "mt_ema_blocks")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "aop_ft")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight", type=float, default=0.1, help="fixed weight of the AoP term (degrees)")
    ap.add_argument("--ema", type=float, default=0.99, help="weight averaging during the stage (both arms)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--arms", nargs="+", choices=["control", "aop"], default=["control", "aop"])
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "cv" / "aop_finetune.json")
    a = ap.parse_args()
    folds = [a.cv / f"fold{k}" for k in a.folds]
    missing = [f for f in folds if not (f / BASE).is_file()]
    if missing:
        raise SystemExit(f"no {BASE} in {missing[0]}: run scripts/ema_pair.py --cv {a.cv} first")
    stored = json.loads((folds[0] / "fold.json").read_text())["config"]
    records = load_records(Config.model_validate({**stored, "base_dir": str(REPO / "configs")}))
    for fold in folds:
        for arm in a.arms:
            run_fold_arm(fold, arm, a.out / arm / fold.name, records, a)
    arms = {"start": (a.cv, BASE), **{arm: (a.out / arm, DONE) for arm in a.arms}}
    done = [k for k in a.folds if all((d / f"fold{k}" / n).is_file() for d, n in arms.values())]
    report = {"cv": str(a.cv), "folds": done, "stage": {"epochs": a.epochs, "lr": a.lr, "weight": a.weight,
              "ema": a.ema}, "pooled": {}, "per_fold": {}}  # fmt: skip
    for arm, (d, name) in arms.items():
        report["pooled"][arm] = row(pool_job(d, done, name))
        report["per_fold"][arm] = [round(row(pool_job(d, [k], name))["plain_aop"], 2) for k in done]
        r = report["pooled"][arm]
        print(
            f"{arm:8s} plain AoP {r['plain_aop']:.2f}  MRE {r['plain_mre']:.2f}  shift {r['shift_aop']:.2f}  "
            f"mirrored {r['mirrored_aop']:.2f}  >=130: {r['bands']['>=130']}  per fold {report['per_fold'][arm]}"
        )
    a.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
