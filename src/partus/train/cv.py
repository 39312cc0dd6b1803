"""Grouped K-fold cross-validation: train every fold, predict its held-out images, evaluate all
out-of-fold predictions together with the official metrics, write a report."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..evaluate import evaluate_landmarks, evaluate_segmentation
from ..geometry import measure_mask
from ..io import atomic_path, atomic_write, write_json, write_predictions_csv
from ..refine import SUFFIX, Refiner
from ..report import write_report
from ..robustness import jsonable, markdown_tables, pool, shift_aware_report, variant_metrics
from .fit import FitResult, fit, load_records, split
from .inference import predict, predict_oriented
from .module import LandmarkModule
from .refine import FILE as REFINER
from .refine import export_refiner

__all__ = ["cross_validate", "save_shift", "shift_evaluation"]

#: ``_fold_shift``'s default: load the fold's refiner itself (``scripts/sweep.py`` calls it on its own).
_LOAD = object()


def cross_validate(
    cfg: Config,
    out_dir: str | Path,
    *,
    folds: int | None = None,
    devices: int = 1,
    progress: bool = True,
    shift: bool = True,
) -> dict:
    """Train and evaluate every fold; returns (and writes to ``out_dir/cv_summary.json``) the summary.

    Out-of-fold predictions go to ``out_dir/predictions.csv`` (IUGC 2025 format + AOP, HSD, status);
    the report (metrics, per-image table, plots) to ``out_dir/report/``. With ``shift`` (default), every
    fold's model is also run on the acquisition-shift suite and mirrored copies of its validation scans
    (:mod:`partus.robustness`): ``summary["shift_aware"]`` and ``report/shift_aware.md``. A fold finished by an earlier
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
    shift_reports, told = [], []
    for k in range(folds):
        res = _fold(cfg, out / f"fold{k}", k, records, devices=devices, progress=progress)
        images = [r.image for r in res.val_records]
        with fold_refiner(out / f"fold{k}") as refiner:  # exported once, for the shift report and the points
            if shift:
                rep, told_k = _fold_shift(res, out / f"fold{k}", [index[r.name] for r in res.val_records], cfg,
                                          refiner=refiner)  # fmt: skip
                shift_reports.append(rep)
                told.append(told_k)
            p, _, m = predict(
                res.module.model, images, input_size=cfg.data.input_size,
                method=cfg.decode.method, sigma=cfg.data.sigma, tta_flip=cfg.decode.tta_flip,
                anatomical=cfg.data.augment.flip_policy == "anatomical",
            )  # fmt: skip
            if refiner is not None:
                p = np.stack(refiner(images, list(p)))
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
    if shift_reports:
        pooled = pool(shift_reports)
        told_raw = [np.concatenate(x) for x in zip(*told, strict=True)]
        summary["shift_aware"] = {**jsonable(pooled), "mirrored_told": variant_metrics(*told_raw[:2]),
                                  "false_flip_rate": float(np.mean(told_raw[2] > 0.5)),
                                  "split": cfg.train.split}  # fmt: skip
        (out / "report").mkdir(parents=True, exist_ok=True)
        title = f"{cfg.name}: shift-aware CV ({cfg.train.split})"
        atomic_write(out / "report" / "shift_aware.md", markdown_tables(pooled, title))
    write_json(out / "cv_summary.json", summary)
    return json.loads(json.dumps(summary, default=str))


def shift_evaluation(module: LandmarkModule, val, indices: list[int], cfg: Config, refiner=None) -> tuple[dict, tuple]:
    """One fold's shift-aware report, plus (pred, gt, P(mirrored) on the plain scans) for mirrored scans
    measured with the orientation given (``mirrored``), the anatomical upper bound of canonicalisation.
    ``refiner``: the fold's symphysis refiner (:class:`partus.refine.Refiner`), when it has one."""
    model = module.model
    kw = {"input_size": cfg.data.input_size, "method": cfg.decode.method, "sigma": cfg.data.sigma,
          "refiner": refiner}  # fmt: skip
    default = "auto" if model.kind == "multitask" else "standard"
    images = [r.image for r in val]
    gt = np.stack([r.points for r in val])

    p_mirror = []  # P(mirrored) of each call; shift_aware_report's first call is the plain scans

    def run(imgs, orientation=default):
        pts, p = predict_oriented(model, imgs, orientation=orientation, **kw)
        p_mirror.append(p if orientation == "auto" else np.zeros(len(imgs)))
        return pts, None

    rep = shift_aware_report(run, images, gt, seed=cfg.train.seed, indices=indices)
    mirrored = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    told_pred = run(mirrored, "mirrored")[0]
    return rep, (told_pred, rep["raw"]["mirrored"][1], p_mirror[0])


def _fold_shift(
    res: FitResult, out: Path, indices: list[int], cfg: Config, *, refiner: Refiner | None | object = _LOAD
) -> tuple[dict, tuple]:
    """:func:`shift_evaluation` of a fold, cached in ``shift.npz`` beside its checkpoint (reused with it).
    ``refiner``: the fold's refiner already loaded (or None, it has none); by default loaded from ``out``."""
    from ..robustness import summarise

    cache = out / "shift.npz"
    deps = [Path(res.checkpoint), *([out / REFINER] if (out / REFINER).is_file() else [])]
    if cache.is_file() and cache.stat().st_mtime >= max(d.stat().st_mtime for d in deps):
        z = np.load(cache)
        variants = [k[5:] for k in z.files if k.startswith("pred_")]
        raw = {v: (z[f"pred_{v}"], z[f"gt_{v}"], None) for v in variants}
        return summarise(raw), (z["told_pred"], z["told_gt"], z["p_mirror"])
    with fold_refiner(out) if refiner is _LOAD else nullcontext(refiner) as r:  # loaded here unless given
        rep, told = shift_evaluation(res.module, res.val_records, indices, cfg, r)
    save_shift(cache, rep, told)
    return rep, told


@contextmanager
def fold_refiner(fold_dir: Path) -> Iterator[Refiner | None]:
    """The fold's symphysis refiner (``refiner.pt``) exported and loaded as the shipped path runs it, or None."""
    if not (fold_dir / REFINER).is_file():
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fold{SUFFIX}"
        export_refiner(fold_dir / REFINER, path)
        yield Refiner(path)


def save_shift(path: Path, rep: dict, told: tuple) -> None:
    """A fold's :func:`shift_evaluation` as ``.npz`` (pooled by ``benchmarks/shift_sweep.py``), atomically."""
    arrays = {f"{kind}_{v}": a for v, (p, g, _) in rep["raw"].items() for kind, a in (("pred", p), ("gt", g))}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, told_pred=told[0], told_gt=told[1], p_mirror=told[2], **arrays)


def _same_config(stored: dict | None, cfg: Config) -> bool:
    """Whether a finished fold's stored config is ``cfg``; settings added to partus since then count at their
    defaults (so a new option, off by default, does not retrain finished folds)."""
    try:
        return Config.model_validate(stored).model_dump(mode="json") == cfg.model_dump(mode="json")
    except ValueError:  # pydantic's ValidationError: a setting that no longer exists, or no config at all
        return False


def _fold(cfg: Config, out: Path, k: int, records, *, devices: int, progress: bool) -> FitResult:
    """Train fold ``k``, or reuse it when a previous run finished it (``fold.json`` + its checkpoint)."""
    marker = out / "fold.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        ckpt = Path(done["checkpoint"])
        if ckpt.is_file() and _same_config(done.get("config"), cfg):
            train, val = split(records, k, cfg.train.folds, cfg.train.seed, cfg.train.split)
            module = LandmarkModule.load_from_checkpoint(ckpt, map_location="cpu")
            return FitResult(out, ckpt, module, train, val, done["seconds"], done["epochs"])
    res = fit(cfg, out, fold=k, records=records, devices=devices, progress=progress)
    write_json(marker, {"checkpoint": str(res.checkpoint), "epochs": res.epochs, "seconds": res.seconds,
                        "config": cfg.model_dump(mode="json")})  # fmt: skip
    return res


def _missing():
    from ..measurement import Measurement

    return Measurement.not_measurable("no landmarks predicted (segmentation not measurable)")
