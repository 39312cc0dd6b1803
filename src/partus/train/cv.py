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
from ..geometry import measure_mask
from ..io import write_json, write_predictions_csv
from ..report import write_report
from .fit import FitResult, fit, load_records, split
from .inference import predict
from .module import LandmarkModule

__all__ = ["cross_validate"]


def cross_validate(
    cfg: Config, out_dir: str | Path, *, folds: int | None = None, devices: int = 1, progress: bool = True
) -> dict:
    """Train and evaluate every fold; returns (and writes to ``out_dir/cv_summary.json``) the summary.

    Out-of-fold predictions go to ``out_dir/predictions.csv`` (IUGC 2025 format + AOP, HSD, status);
    the report (metrics, per-image table, plots) to ``out_dir/report/``. A fold finished by an earlier
    run with the same configuration (``foldK/fold.json``) is reused, so an interrupted CV continues.
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
        res = _fold(cfg, out / f"fold{k}", k, records, devices=devices, progress=progress)
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
    hsd = {}
    if res.module.kind == "segmentation" and all(r.mask is not None for r in records):
        # HSD needs the head contour: only the segmentation family predicts one
        hsd["pred_hsd"] = np.array([np.nan if m is None else measure_mask(m, clean=True, allow_border=True).hsd
                                    for m in masks])  # fmt: skip
        hsd["gt_hsd"] = np.array([measure_mask(r.mask, allow_border=True).hsd for r in records])
    lm = evaluate_landmarks(pred, gt, names=names, radii=(5, 10, 20), **hsd)
    reports = [lm]
    seg = None
    if hsd:
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


def _fold(cfg: Config, out: Path, k: int, records, *, devices: int, progress: bool) -> FitResult:
    """Train fold ``k``, or reuse it when a previous run finished it (``fold.json`` + its checkpoint)."""
    marker = out / "fold.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        ckpt = Path(done["checkpoint"])
        if ckpt.is_file() and done.get("config") == cfg.model_dump(mode="json"):
            train, val = split(records, k, cfg.train.folds, cfg.train.seed)
            module = LandmarkModule.load_from_checkpoint(ckpt, map_location="cpu")
            return FitResult(out, ckpt, module, train, val, done["seconds"], done["epochs"])
    res = fit(cfg, out, fold=k, records=records, devices=devices, progress=progress)
    write_json(marker, {"checkpoint": str(res.checkpoint), "epochs": res.epochs, "seconds": res.seconds,
                        "config": cfg.model_dump(mode="json")})  # fmt: skip
    return res


def _missing():
    from ..measurement import Measurement

    return Measurement.not_measurable("no landmarks predicted (segmentation not measurable)")
