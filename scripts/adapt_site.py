"""A simulated new site for ``partus adapt`` (the unlabelled-data issue's adaptation protocol).

The base network is the shift-aware blocks-CV fold-0 multitask model (trained without block 0). The "site"
is block 0 seen through another scanner: every scan gets the same chain of acquisition shifts (``--site``,
default stronger speckle; ``none``: as they are), seeded per scan. The site's scans are split by
``near_dup_cluster`` into halves (83 and 52 scans): ``partus adapt`` sees one half without labels (the
other with ``--swap``); both the base and the adapted model are then judged on the other half against its
labels (AoP MAE, MRE, flagged share).

    python scripts/adapt_site.py --site fan --epochs 0 --out runs/site_bn/fan   # -> OUT/adapted_*.json
    python scripts/adapt_site.py --summarise runs/site_bn runs/site_bn_ema   # every site and half of each
                                                  # folder, pooled; writes benchmarks/cv/adapt_sites.json

(A half is small: ``--min-kept 5 --min-kept-share 0`` lets adapt go on where few pseudo-labels pass.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from partus.config import load_config
from partus.data.shift import apply_shift
from partus.data.unlabelled import Scan
from partus.io import write_json
from partus.robustness import variant_metrics
from partus.train.fit import load_records, split

ROOT = Path(__file__).resolve().parents[1]


def site_scans(records, chain: list[str], seed: int = 7):
    out = []
    for i, r in enumerate(records):
        img, pts = r.image, r.points
        for name in chain:
            s = apply_shift(name, img, pts, seed=seed, index=i)
            img, pts = s.image, s.points
        out.append((r, img, pts))
    return out


def judge(model, scans) -> dict:
    from partus.predict import Predictor

    preds = Predictor(model).predict([img for _, img, _ in scans])
    none = np.full((3, 2), np.nan)
    pts = np.stack([none if p.measurement.landmarks is None else p.measurement.landmarks.to_array()
                    for p in preds])  # fmt: skip
    gt = np.stack([p for _, _, p in scans])
    ok = np.array([p.measurement.ok for p in preds])
    return {"all": variant_metrics(pts, gt, ok), "kept_only": variant_metrics(pts[ok], gt[ok])}


def summarise(root: Path) -> dict:
    """Every ``SITE/adapted_<arm>[_swap].json`` under ``root``: per site and arm, AoP MAE / MRE / flagged
    on the held-out halves pooled (weighted by scans), over every site with both halves, and each half."""
    runs: dict = {}
    for f in sorted(root.glob("*/adapted_*.json")):
        d = json.loads(f.read_text())
        arm = f.stem[len("adapted_") :].removesuffix("_swap")
        half = runs.setdefault(f.parent.name, {}).setdefault("swap" if f.stem.endswith("_swap") else "main", {})
        half["base"] = d["base"]["all"]
        half[arm] = d["adapted"]["all"]

    def pooled(halves: list[dict], arm: str) -> dict:
        n = np.array([h["base"]["n"] for h in halves], float)
        return {k: round(float(np.dot(n, [h[arm][k] for h in halves]) / n.sum()), 3)
                for k in ("aop_mae", "mre", "flagged")} | {"n": int(n.sum())}  # fmt: skip

    out: dict = {"sites": {}, "all": {}, "halves": runs}
    for site, halves in runs.items():
        arms = set.intersection(*(set(h) for h in halves.values()))
        if len(halves) == 2:
            out["sites"][site] = {arm: pooled(list(halves.values()), arm) for arm in sorted(arms)}
    for arm in set.intersection(*(set(v) for v in out["sites"].values())) if out["sites"] else ():
        out["all"][arm] = pooled([h for s in out["sites"] for h in runs[s].values()], arm)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default=str(ROOT / "runs/sweep/mt_strong_blocks/fold0/checkpoints/best.ckpt"))
    ap.add_argument("--site", default="speckle", help="Shifts, comma-separated (none: the scans as they are).")
    ap.add_argument("--epochs", type=float, default=0.0, help="adapt's fine-tuning epochs (0: statistics only).")
    ap.add_argument("--pretrain-minutes", type=float, default=0.0)
    ap.add_argument("--no-bn-stats", action="store_true", help="Keep the base BatchNorm statistics.")
    ap.add_argument("--refiner-stats", action="store_true", help="Re-estimate the refiner's statistics too.")
    ap.add_argument("--bn-prior", type=float, default=0.0, help="The base statistics' share of the new ones.")
    ap.add_argument("--bn-prefix", default="", help="Only the BatchNorm layers so named (e.g. encoder).")
    ap.add_argument("--tent-epochs", type=int, default=0, help="Entropy minimisation passes (Tent) first.")
    ap.add_argument("--tent-lr", type=float, default=1e-3)
    ap.add_argument("--min-kept", type=int, default=20, help="adapt's fewest kept pseudo-labels (a half is small).")
    ap.add_argument("--min-kept-share", type=float, default=0.2, help="adapt's smallest kept share.")
    ap.add_argument("--swap", action="store_true", help="Adapt on the other half of the site, judge on this one.")
    ap.add_argument("--out", default=str(ROOT / "runs" / "site"))
    ap.add_argument("--summarise", type=Path, nargs="+", help="Summarise the runs under these folders and stop.")
    ap.add_argument("--summary-out", type=Path, default=ROOT / "benchmarks" / "cv" / "adapt_sites.json")
    args = ap.parse_args()
    if args.summarise:
        tables = {folder.name: summarise(folder) for folder in args.summarise}
        for name, table in tables.items():
            if not table["sites"]:
                ap.error(f"no site with both halves under {name}")
            for site, arms in [*table["sites"].items(), ("all", table["all"])]:
                print(f"{name} {site:12s}", "  ".join(f"{a}: {v['aop_mae']:.2f} deg {v['mre']:.2f} px"
                                                    for a, v in arms.items()))  # fmt: skip
        write_json(args.summary_out, tables)
        return
    from partus.export import export_onnx
    from partus.train.adapt import AdaptConfig, adapt, save_trainable

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(ROOT / "configs" / "multitask.yaml", ["train.split=blocks"])
    _, block = split(load_records(cfg), 0, 5, cfg.train.seed, "blocks")
    groups = sorted({r.group for r in block})
    rng = np.random.default_rng(0)
    half = set(rng.permutation(groups)[: len(groups) // 2])
    scans = site_scans(block, [] if args.site == "none" else args.site.split(","))
    unl = [(r, img, p) for r, img, p in scans if (r.group in half) != args.swap]
    test = [(r, img, p) for r, img, p in scans if (r.group in half) == args.swap]
    base_pt, base_onnx = out / "base.pt", out / "base.onnx"
    if not base_onnx.is_file() or not base_pt.is_file():
        save_trainable(args.base, base_pt)
        export_onnx(args.base, base_onnx)
    name = f"adapted_e{args.epochs:g}_p{args.pretrain_minutes:g}" + "_nobn" * args.no_bn_stats
    name += "_rbn" * args.refiner_stats + (f"_prior{args.bn_prior:g}" if args.bn_prior else "")
    name += f"_{args.bn_prefix}" if args.bn_prefix else ""
    name += (f"_tent{args.tent_epochs}_lr{args.tent_lr:g}" if args.tent_epochs else "") + "_swap" * args.swap
    report = adapt([Scan(r.name, img, str(r.group)) for r, img, _ in unl], out / name, base=base_pt,
                   base_onnx=base_onnx, config=AdaptConfig(epochs=args.epochs, pretrain_minutes=args.pretrain_minutes,
                                                    bn_stats=not args.no_bn_stats, min_kept=args.min_kept,
                                                    refiner_stats=args.refiner_stats, bn_prior=args.bn_prior,
                                                    bn_prefix=args.bn_prefix, tent_epochs=args.tent_epochs,
                                                    tent_lr=args.tent_lr,
                                                    min_kept_share=args.min_kept_share),
                   step=lambda m: print(">", m, flush=True))  # fmt: skip
    result = {"site": args.site, "n_adapt": len(unl), "n_test": len(test), "adapt_minutes": report["minutes"],
              "pseudo_labels": report["pseudo_labels"], "base": judge(base_onnx, test),
              "adapted": judge(out / name / "multitask.onnx", test),
              "unlabelled_half": {"base": judge(base_onnx, unl),
                                  "adapted": judge(out / name / "multitask.onnx", unl)}}  # fmt: skip
    write_json(out / f"{name}.json", result)
    print(json.dumps({k: result[k] for k in ("n_adapt", "n_test", "adapt_minutes", "base", "adapted")}, indent=1))


if __name__ == "__main__":
    main()
