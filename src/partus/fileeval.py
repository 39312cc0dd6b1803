"""Prediction files against ground-truth files (``partus evaluate``): a prediction CSV, optionally a
ground-truth AoP CSV and mask folders, matched by image name, scored by :mod:`partus.evaluate`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import LandmarkReport, evaluate_landmarks
from .segmetrics import evaluate_segmentation

__all__ = ["FileEvaluation", "evaluate_files"]


def _mask_index(folder: Path) -> dict[str, Path]:
    """Mask files of a folder by stem (``a.png`` and ``a.mha`` both index as ``a``)."""
    from .io.labels import MASK_SUFFIXES

    index: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        name = p.name.lower()
        if p.is_file() and name.endswith(MASK_SUFFIXES):
            index.setdefault(p.name[: -len(".nii.gz")] if name.endswith(".nii.gz") else p.stem, p)
    return index


@dataclass(frozen=True)
class FileEvaluation:
    """Result of :func:`evaluate_files`: the reports and what could not be matched."""

    landmarks: LandmarkReport
    segmentation: Any = None  # SegmentationReport when masks were given
    unmatched_predictions: list[str] = field(default_factory=list)
    missing_pred_masks: list[str] = field(default_factory=list)


def evaluate_files(
    pred_csv: str | Path,
    gt_csv: str | Path,
    *,
    gt_aop_csv: str | Path | None = None,
    pred_masks: str | Path | None = None,
    gt_masks: str | Path | None = None,
    radii: Sequence[float] = (5, 10, 20),
) -> FileEvaluation:
    """Evaluate a prediction CSV (and optionally predicted masks) against ground truth files.

    Every ground-truth row is evaluated: a row absent from the predictions, or predicted without points,
    counts as missing (a flagged "not measurable" row that has points is scored on them). Predictions of
    images not in the ground truth are listed in ``unmatched_predictions`` and ignored. The ground-truth AoP
    is computed from its points unless ``gt_aop_csv`` (IUGC 2025 ``Filename,AOP``) gives it. HSD is compared
    when both CSVs have an ``HSD`` column. With mask folders, masks are matched by file stem; a missing
    predicted mask is scored as an empty prediction.

    Raises
    ------
    InputError
        If a file cannot be read, or the ground truth is empty.
    """
    from .errors import InputError
    from .io import read_aop_csv, read_label_map, read_predictions_csv

    pred, gt = read_predictions_csv(pred_csv), read_predictions_csv(gt_csv)
    if not gt:
        raise InputError(gt_csv, "the ground-truth CSV has no rows")
    names = list(gt)
    nan3 = np.full((3, 2), np.nan)
    p_pts = np.stack([pred[n].points if n in pred else nan3 for n in names])
    g_pts = np.stack([gt[n].points for n in names])
    if not np.isfinite(g_pts).all():
        bad = [n for n in names if not np.isfinite(gt[n].points).all()]
        raise InputError(gt_csv, f"ground-truth rows without all three points: {bad[:5]}")
    kw: dict[str, Any] = {}
    if gt_aop_csv is not None:
        aop = read_aop_csv(gt_aop_csv)
        absent = [n for n in names if n not in aop]
        if absent:
            raise InputError(gt_aop_csv, f"no AOP for {len(absent)} ground-truth image(s), e.g. {absent[:3]}")
        kw["gt_aop"] = np.array([aop[n] for n in names])
    g_hsd = np.array([gt[n].hsd for n in names])
    p_hsd = np.array([pred[n].hsd if n in pred else np.nan for n in names])
    if np.isfinite(g_hsd).all() and np.isfinite(p_hsd).any():
        kw.update(pred_hsd=p_hsd, gt_hsd=g_hsd)
    lm = evaluate_landmarks(p_pts, g_pts, names=names, radii=radii, **kw)

    seg, missing_masks = None, []
    if (pred_masks is None) != (gt_masks is None):
        raise ValueError("pred_masks and gt_masks must be given together")
    if pred_masks is not None:
        p_idx, g_idx = _mask_index(Path(pred_masks)), _mask_index(Path(gt_masks))
        stems = [Path(n).stem for n in names if Path(n).stem in g_idx] or sorted(g_idx)
        if not stems:
            raise InputError(gt_masks, "no mask files found")
        gts = [read_label_map(g_idx[s]) for s in stems]
        preds = []
        for s, g in zip(stems, gts, strict=True):
            if s in p_idx:
                preds.append(read_label_map(p_idx[s]))
            else:
                missing_masks.append(s)
                preds.append(np.zeros_like(g))
        seg = evaluate_segmentation(preds, gts, names=stems)
    return FileEvaluation(lm, seg, sorted(set(pred) - set(gt)), missing_masks)
