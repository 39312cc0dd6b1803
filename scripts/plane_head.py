"""Fit and judge the standard-plane head of the shipped multitask network (the video issue, paper 5).

    python scripts/plane_head.py [--data ../shared/data/psfhs-dev] [--cv runs/sweep/mt_ema_blocks]
                                 [--final runs/multitask_ema/all/checkpoints/last.ckpt] [--out runs/plane_ema]

1. Builds the weak plane set (:func:`partus.train.plane.plane_set`): every psfhs-dev scan plain, mirrored
   and under two random acquisition shifts (positives), and one frame of each non-standard family.
2. Out-of-fold judgement, on the blocks folds of the shipped model's CV: for fold K the head is fitted on
   the features of fold K's *own* network (trained without block K) of the other blocks' samples and scores
   block K's. Also leave-one-family-out (:data:`UNSEEN`): a family's held-out score when the head never saw
   it, the best stand-in here for kinds of ultrasound nobody drew (real breast, thyroid, heart scans).
3. The threshold: the highest P(standard plane) that refuses at most 1 % of the out-of-fold positives
   (plain, mirrored, shifted pooled).
4. Fits the head on all scans with the final trunk and writes ``OUT/multitask_plane.ckpt`` (the shipped
   checkpoint plus the ``standard_plane`` row) and ``OUT/plane_head.json`` (figures, threshold).
Features are cached per network in OUT (re-runs are quick). ~35 min on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from partus.clsmetrics import classification_metrics  # noqa: E402
from partus.data.planes import DRAWN, NON_STANDARD  # noqa: E402
from partus.data.records import load_psfhs  # noqa: E402
from partus.data.splits import block_kfold  # noqa: E402
from partus.train.module import LandmarkModule  # noqa: E402
from partus.train.plane import add_plane_head, fit_plane_head, plane_inputs, plane_scores, plane_set  # noqa: E402

FOLDS = 5
MAX_REFUSED_POSITIVES = 0.01


def features(ckpt: Path, images, cache: Path) -> np.ndarray:
    if cache.is_file() and cache.stat().st_mtime > ckpt.stat().st_mtime:
        return np.load(cache)
    module = LandmarkModule.load_from_checkpoint(ckpt, map_location="cpu")
    x = plane_inputs(module.model, images, int(module.cfg.data.input_size))
    np.save(cache, x)
    return x


#: Families left out in turn to judge the head on a kind of frame it never saw (the stand-ins for other
#: anatomy).
UNSEEN = ("biometry", "layered", "cardiac", "tissue")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "psfhs-dev")
    # the shipped model's runs (scripts/ship_model.py reads the same)
    ap.add_argument("--cv", type=Path, default=REPO / "runs" / "sweep" / "mt_ema_blocks")
    ap.add_argument("--final", type=Path, default=REPO / "runs" / "multitask_ema" / "all" / "checkpoints" / "last.ckpt")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "plane_ema")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    records = load_psfhs(args.data)
    fold_of = block_kfold([r.name for r in records], [r.group for r in records], FOLDS)
    ps = plane_set(records)
    fams = np.array(ps.families)
    sample_fold = fold_of[ps.source]
    print(f"{len(records)} scans -> {len(ps.images)} samples ({int(ps.labels.sum())} positive)", flush=True)

    oof = np.full(len(ps.images), np.nan)
    unseen = {f: np.full(len(ps.images), np.nan) for f in UNSEEN}
    fit = {"hidden": args.hidden, "steps": args.steps}
    for k in range(FOLDS):
        x = features(args.cv / f"fold{k}" / "checkpoints" / "last.ckpt", ps.images, args.out / f"plane_fold{k}.npy")
        train, test = sample_fold != k, sample_fold == k
        oof[test] = plane_scores(fit_plane_head(x[train], ps.labels[train], **fit), x[test])
        for fam in UNSEEN:  # the head without that family, judged on it (and on the positives)
            keep = train & (fams != fam)
            sel = test & (fams == fam)
            unseen[fam][sel] = plane_scores(
                fit_plane_head(x[keep], ps.labels[keep], hidden=args.hidden, steps=250, lr=1e-2), x[sel]
            )
        print(f"fold {k}: AUC {classification_metrics(ps.labels[test], oof[test])['auc']:.4f}", flush=True)

    pos = ps.labels == 1
    threshold = float(np.quantile(oof[pos], MAX_REFUSED_POSITIVES))
    np.save(args.out / "oof.npy", oof)
    per_fold = [{"auc": classification_metrics(ps.labels[sample_fold == k], oof[sample_fold == k])["auc"],
                 "refused_positives": float((oof[pos & (sample_fold == k)] < threshold).mean())}
                for k in range(FOLDS)]  # fmt: skip
    report = {
        "samples": len(ps.images), "positives": int(pos.sum()), "threshold": threshold, "per_fold": per_fold,
        "oof": classification_metrics(ps.labels, oof, threshold=threshold),
        "refused_positives": {f: float((oof[fams == f] < threshold).mean())
                              for f in sorted(set(fams[pos]))},
        "refused_negatives": {f: float((oof[fams == f] < threshold).mean()) for f in NON_STANDARD},
        "unseen_family": {f: {"refused": float((unseen[f][fams == f] < threshold).mean()),
                              "auc_vs_positives": classification_metrics(
                                  np.r_[np.ones(pos.sum()), np.zeros((fams == f).sum())],
                                  np.r_[oof[pos], unseen[f][fams == f]])["auc"]}
                          for f in UNSEEN},
        "drawn_families": list(DRAWN), "head": fit,
    }  # fmt: skip
    x = features(args.final, ps.images, args.out / "plane_final.npy")
    head = fit_plane_head(x, ps.labels, **fit)
    ckpt = add_plane_head(args.final, head, args.out / "multitask_plane.ckpt")
    report["final_in_sample_auc"] = classification_metrics(ps.labels, plane_scores(head, x))["auc"]
    (args.out / "plane_head.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"wrote {ckpt}")


if __name__ == "__main__":
    main()
