"""A simulated new site for ``partus adapt`` (the unlabelled-data issue's adaptation protocol).

The base network is the shift-aware blocks-CV fold-0 multitask model (trained without block 0). The "site"
is block 0 seen through another scanner: every scan gets the same chain of acquisition shifts (``--site``,
default stronger speckle), seeded per scan. (With another fan and background the base model's heads
disagree on every scan, and ``adapt`` refuses the site.) The site's scans are split by
``near_dup_cluster`` into halves: ``partus adapt`` sees one half without labels; both the base and the
adapted model are then judged on the other half against its labels (AoP MAE, MRE, flagged share).

    python scripts/adapt_site.py            # writes runs/site/result.json
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default=str(ROOT / "runs/sweep/mt_strong_blocks/fold0/checkpoints/best.ckpt"))
    ap.add_argument("--site", default="speckle")
    ap.add_argument("--epochs", type=float, default=10.0)
    ap.add_argument("--pretrain-minutes", type=float, default=0.0)
    ap.add_argument("--out", default=str(ROOT / "runs" / "site"))
    args = ap.parse_args()
    from partus.export import export_onnx
    from partus.train.adapt import AdaptConfig, adapt, save_trainable

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(ROOT / "configs" / "multitask.yaml", ["train.split=blocks"])
    _, block = split(load_records(cfg), 0, 5, cfg.train.seed, "blocks")
    groups = sorted({r.group for r in block})
    rng = np.random.default_rng(0)
    half = set(rng.permutation(groups)[: len(groups) // 2])
    scans = site_scans(block, args.site.split(","))
    unl = [(r, img, p) for r, img, p in scans if r.group in half]
    test = [(r, img, p) for r, img, p in scans if r.group not in half]
    base_pt, base_onnx = out / "base.pt", out / "base.onnx"
    if not base_onnx.is_file():
        save_trainable(args.base, base_pt)
        export_onnx(args.base, base_onnx)
    name = f"adapted_e{args.epochs:g}_p{args.pretrain_minutes:g}"
    report = adapt([Scan(r.name, img, str(r.group)) for r, img, _ in unl], out / name, base=base_pt,
                   base_onnx=base_onnx, config=AdaptConfig(epochs=args.epochs, pretrain_minutes=args.pretrain_minutes),
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
