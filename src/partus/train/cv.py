"""Grouped K-fold cross-validation: train every fold, predict its held-out images, evaluate all
out-of-fold predictions together with the official metrics, write a report."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..evaluate import evaluate_landmarks, evaluate_segmentation
from ..io import write_json, write_predictions_csv
from ..report import write_report
from .fit import fit, load_records
from .inference import predict

__all__ = ["cross_validate"]


def cross_validate(
    cfg: Config, out_dir: str | Path, *, folds: int | None = None, devices: int = 1, progress: bool = True
) -> dict:
    """Train and evaluate every fold; returns (and writes to ``out_dir/cv_summary.json``) the summary.

    Out-of-fold predictions go to ``out_dir/predictions.csv`` (IUGC 2025 format + AOP, HSD, status);
    the report (metrics, per-image table, plots) to ``out_dir/report/``.
    """
    out = Path(out_dir)
    folds = folds or cfg.train.folds
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"folds": folds})})
    records = load_records(cfg)
    n = len(records)
    names = [r.name for r in records]
    index = {r.name: i for i, r in enumerate(records)}
    pred = np.full((n, 3, 2), np.nan)
    masks: list[np.ndarray | None] = [None] * n
    per_fold, start = [], time.perf_counter()
    for k in range(folds):
        res = fit(cfg, out / f"fold{k}", fold=k, records=records, devices=devices, progress=progress)
        p, _, m = predict(
            res.module.model, [r.image for r in res.val_records], input_size=cfg.data.input_size,
            method=cfg.decode.method, sigma=cfg.data.sigma, tta_flip=cfg.decode.tta_flip,
            anatomical=cfg.data.augment.flip_policy == "anatomical",
        )  # fmt: skip
        for r, pts, mask in zip(res.val_records, p, m, strict=True):
            pred[index[r.name]] = pts
            masks[index[r.name]] = mask
        fold_err = np.nanmean(np.linalg.norm(p - np.stack([r.points for r in res.val_records]), axis=-1))
        per_fold.append({"fold": k, "n_val": len(res.val_records), "epochs": res.epochs,
                         "seconds": round(res.seconds, 1), "mre": float(fold_err)})  # fmt: skip
    gt = np.stack([r.points for r in records])
    lm = evaluate_landmarks(pred, gt, names=names, radii=(5, 10, 20))
    reports = [lm]
    seg = None
    if res.module.kind == "segmentation" and all(r.mask is not None for r in records):
        empty = [np.zeros_like(r.mask) if m is None else m for r, m in zip(records, masks, strict=True)]
        seg = evaluate_segmentation(empty, [r.mask for r in records], names=names)
        reports.append(seg)
    write_report(reports if seg is not None else lm, out / "report")
    rows = [(f"{nm}.png", p if np.isfinite(p).all() else _missing()) for nm, p in zip(names, pred, strict=True)]
    write_predictions_csv(out / "predictions.csv", rows)
    summary = {
        "config": cfg.name, "model": cfg.model.name, "model_kwargs": cfg.model.kwargs, "folds": folds,
        "n_images": n, "input_size": cfg.data.input_size, "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size, "lr": cfg.train.lr, "optimizer": cfg.train.optimizer,
        "scheduler": cfg.train.scheduler, "decode": cfg.decode.method, "tta_flip": cfg.decode.tta_flip,
        "landmarks": lm.summary, "segmentation": None if seg is None else seg.summary,
        "per_fold": per_fold, "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
    }  # fmt: skip
    write_json(out / "cv_summary.json", summary)
    return json.loads(json.dumps(summary, default=str))


def _missing():
    from ..measurement import Measurement

    return Measurement.not_measurable("no landmarks predicted (segmentation not measurable)")
