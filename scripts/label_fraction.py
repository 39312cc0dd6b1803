"""The label-fraction protocol of the unlabelled-data issue, on one blocks-CV fold of psfhs-dev.

L % of the fold's training scans keep their labels (whole ``near_dup_cluster`` groups, seeded); the rest
are used as unlabelled images only. Variants, at equal labels and equal optimiser steps per training:

- ``sup``     supervised on the labelled part (ImageNet encoder, as the shipped config);
- ``ssl``     the encoder pretrained further with MoCo v2 on all training-fold images, then supervised;
- ``pseudo``  self-training: the ``sup`` model pseudo-labels the unlabelled part (filtered), a student
              trains on labelled + kept pseudo-labels (weight 0.5), ``--rounds`` times;
- ``mim``     as ``ssl`` with masked image modelling instead of MoCo;
- ``sslf``, ``mimf``: as ``ssl``/``mim`` with the encoder's BatchNorm layers frozen while pretraining;
- ``both``    ``ssl`` as the teacher and the students' encoder.

A digit after ``pseudo``/``both`` sets the rounds (``pseudo2``); ``_sN`` another training seed (``sup_s1``).

Every model is judged on the held-out block with the shift-aware evaluation (plain, the acquisition-shift
suite, mirrored copies), as ``partus cv`` reports it. Each variant's result is cached in
``OUT/<variant>/result.json``; a rerun continues where the last stopped.

    python scripts/label_fraction.py --fraction 0.25 --variants sup,pseudo,ssl,both
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from partus.config import load_config
from partus.io import write_json
from partus.train.cv import shift_evaluation
from partus.train.fit import fit, load_records, split

ROOT = Path(__file__).resolve().parents[1]


def labelled_subset(train, fraction: float, seed: int):
    """Whole groups, shuffled with ``seed``, until ``fraction`` of the scans are labelled."""
    groups = sorted({r.group or r.name for r in train})
    order = np.random.default_rng(seed).permutation(len(groups))
    want, chosen, n = fraction * len(train), set(), 0
    sizes = {g: 0 for g in groups}
    for r in train:
        sizes[r.group or r.name] += 1
    for i in order:
        if n >= want:
            break
        chosen.add(groups[i])
        n += sizes[groups[i]]
    lab = [r for r in train if (r.group or r.name) in chosen]
    return lab, [r for r in train if (r.group or r.name) not in chosen]


def summary(rep: dict) -> dict:
    keys = ("n", "missing", "mre", "fh1", "aop_mae", "aop_median", "aop_bias")
    return {
        "plain": {k: rep["plain"][k] for k in keys},
        "bands": rep["plain"]["bands"],
        "shift_mean": rep["shift_mean"],
        "mirrored": {k: rep["mirrored"][k] for k in keys},
        "shifts": {k: v["aop_mae"] for k, v in rep["shifts"].items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "multitask.yaml"))
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--steps", type=int, default=800, help="optimiser steps of every training")
    ap.add_argument("--pretrain-minutes", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--variants", default="sup,pseudo,ssl,both")
    ap.add_argument("--out", default=str(ROOT / "runs" / "semi"))
    ap.add_argument("--table", action="store_true", help="print the finished variants as a Markdown table")
    args = ap.parse_args()
    if args.table:
        print(table(Path(args.out) / f"L{round(args.fraction * 100)}_fold{args.fold}"))
        return
    cfg = load_config(
        args.config, [f"train.max_steps={args.steps}", "train.epochs=100000", "train.split=blocks", "train.ema=0"]
    )
    records = load_records(cfg)
    train, val = split(records, args.fold, cfg.train.folds, cfg.train.seed, "blocks")
    lab, unlab = labelled_subset(train, args.fraction, cfg.train.seed)
    index = {r.name: i for i, r in enumerate(records)}
    base = Path(args.out) / f"L{round(args.fraction * 100)}_fold{args.fold}"
    print(f"fold {args.fold}: {len(lab)} labelled, {len(unlab)} unlabelled, {len(val)} held out", flush=True)
    results = {}
    for variant in args.variants.split(","):
        out = base / variant
        done = out / "result.json"
        if done.is_file():
            results[variant] = json.loads(done.read_text())
            continue
        start = time.perf_counter()
        # "pseudo2": two rounds; "sup_s1": another training seed (run-to-run noise)
        name, _, seed = variant.partition("_s")
        kind = name.rstrip("0123456789")
        rounds = int(name[len(kind) :] or args.rounds)
        vcfg = cfg
        if seed:
            vcfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": int(seed)})})
        if kind in ("ssl", "mim", "both", "sslf", "mimf"):
            method = "mim" if kind.startswith("mim") else "moco"
            freeze = kind.endswith("f")
            vcfg = vcfg.model_copy(
                update={
                    "model": vcfg.model.model_copy(
                        update={
                            "encoder_weights": str(pretrained(base, train, cfg, args.pretrain_minutes, method, freeze))
                        }
                    )
                }
            )
        if kind in ("pseudo", "both"):
            from partus.train.semi import self_train

            teacher = base / ("sup" if kind == "pseudo" else "ssl") / "checkpoints" / "last.ckpt"
            if not teacher.is_file():
                raise SystemExit(f"{variant} needs its teacher first: run the {teacher.parents[1].name} variant")
            res, info = self_train(
                vcfg,
                out,
                lab,
                [r.image for r in unlab],
                teacher=teacher,
                names=[r.name for r in unlab],
                rounds=rounds,
            )
        else:
            res, info = fit(vcfg, out, records=lab), {}
        rep, _ = shift_evaluation(res.module, val, [index[r.name] for r in val], cfg)
        result = {
            "variant": variant,
            "fraction": args.fraction,
            "fold": args.fold,
            "n_labelled": len(lab),
            "n_unlabelled": len(unlab),
            "n_val": len(val),
            "steps": args.steps,
            "rounds": rounds if kind in ("pseudo", "both") else 0,
            "seed": vcfg.train.seed,
            "minutes": round((time.perf_counter() - start) / 60, 1),
            **info,
            **summary(rep),
        }
        write_json(done, result)
        results[variant] = result
        print(json.dumps({k: result[k] for k in ("variant", "plain", "shift_mean", "minutes")}), flush=True)
    write_json(base / "summary.json", results)


def table(base: Path) -> str:
    """The finished variants of one fold as a Markdown table (AoP MAE in degrees)."""
    rows = [
        "| variant | seed | pseudo-labels used (kept / scans) | plain AoP MAE ° | MRE px | shift-suite AoP MAE ° "
        "(worst) | mirrored AoP MAE ° | < 90 / 90–110 / 110–130 / ≥ 130 ° | minutes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in sorted(base.glob("*/result.json")):
        r = json.loads(f.read_text())
        rounds = r.get("rounds") if isinstance(r.get("rounds"), list) else []
        used = " → ".join(f"{x['used']} ({x['kept']} / {x['scans']})" for x in rounds) or "–"
        bands = " / ".join("–" if b["mae"] is None else f"{b['mae']:.1f}" for b in r["bands"])
        sm = r["shift_mean"]
        rows.append(f"| {f.parent.name} | {r.get('seed', 0)} | {used} | {r['plain']['aop_mae']:.2f} | "
                    f"{r['plain']['mre']:.2f} | {sm['aop_mae']:.2f} ({sm['worst']}) | {r['mirrored']['aop_mae']:.2f} | "
                    f"{bands} | {r['minutes']} |")  # fmt: skip
    return "\n".join(rows)


def pretrained(base: Path, train, cfg, minutes: float, method: str = "moco", freeze_bn: bool = False) -> Path:
    """MoCo v2 (or masked image modelling) on every training-fold image (labelled or not), from the ImageNet
    encoder; cached."""
    from partus.train.ssl import PretrainConfig, pretrain

    path = base / f"{method}{'_fbn' if freeze_bn else ''}.pth"
    if not path.is_file():
        pretrain(
            [r.image for r in train],
            path,
            groups=[r.group for r in train],
            config=PretrainConfig(method=method, minutes=minutes, init=cfg.model.encoder_weights, freeze_bn=freeze_bn),
        )
    return path


if __name__ == "__main__":
    main()
