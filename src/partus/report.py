"""Evaluation reports on disk: ``summary.json``, ``per_image.csv`` and PNG plots.

:func:`write_report` takes the results of :func:`partus.evaluate.evaluate_landmarks` and/or
:func:`partus.evaluate.evaluate_segmentation`. Plots use Matplotlib's object API on the Agg canvas (no
``pyplot``, no global backend switch). Every file is written atomically: to a temporary file in the
same directory, then ``os.replace`` (:func:`partus.io._atomic.atomic_path`).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .conventions import LANDMARKS
from .evaluate import LandmarkReport, SegmentationReport
from .io._atomic import atomic_path
from .segmetrics import SEG_CLASSES

__all__ = ["save_figure", "write_report"]

_DPI = 120


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then move it onto ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


def _jsonable(value: Any) -> Any:
    """NumPy scalars to Python, non-finite floats to ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value) if isinstance(value, float) else value


def _merge_rows(reports: Sequence[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Join the per-image rows of several reports on ``name`` (first-seen order)."""
    rows: dict[str, dict[str, Any]] = {}
    columns: list[str] = ["name"]
    for rep in reports:
        for row in rep.per_image():
            rows.setdefault(row["name"], {"name": row["name"]}).update(row)
            columns += [k for k in row if k not in columns]
    return columns, list(rows.values())


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = _DPI) -> Path:
    """Lay out a Matplotlib figure and write it as PNG, atomically (Agg canvas; no pyplot)."""
    FigureCanvasAgg(fig)
    fig.tight_layout()
    _atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return Path(path)


def _plot_landmark_errors(rep: LandmarkReport, path: Path) -> None:
    unit = rep.summary["unit"]
    fig = Figure(figsize=(12, 3.8))
    finite = rep.errors[np.isfinite(rep.errors)]
    top = float(finite.max()) if finite.size else 1.0
    bins = np.linspace(0.0, max(top, 1e-6) * 1.02, 31)
    for k, name in enumerate(LANDMARKS):
        ax = fig.add_subplot(1, 3, k + 1)
        e = rep.errors[:, k][np.isfinite(rep.errors[:, k])]
        ax.hist(e, bins=bins, color=f"C{k}", edgecolor="black", linewidth=0.5)
        if e.size:
            ax.axvline(e.mean(), color="black", linestyle="--", label=f"mean {e.mean():.2f} {unit}")
            ax.legend(loc="upper right")
        ax.set_title(f"{name} error (n = {e.size}, missing {rep.summary['n_missing']})")
        ax.set_xlabel(f"Euclidean error ({unit})")
        ax.set_ylabel("images")
    fig.suptitle(f"Landmark errors, MRE = {rep.summary['mre']:.2f} {unit}")
    save_figure(fig, path)


def _plot_bland_altman(pred: np.ndarray, gt: np.ndarray, what: str, unit: str, path: Path) -> None:
    ok = np.isfinite(pred) & np.isfinite(gt)
    mean, diff = (pred[ok] + gt[ok]) / 2, pred[ok] - gt[ok]
    fig = Figure(figsize=(6.5, 5))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(mean, diff, s=14, alpha=0.7, color="C0", edgecolor="none")
    if diff.size:
        bias = float(diff.mean())
        sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
        ax.axhline(bias, color="C3", label=f"bias {bias:+.2f} {unit}")
        for sign in (-1, 1):
            loa = bias + sign * 1.96 * sd
            label = f"bias {'+' if sign > 0 else '-'} 1.96 SD = {loa:+.2f} {unit}"
            ax.axhline(loa, color="C3", linestyle="--", label=label)
        ax.legend(loc="best", fontsize="small")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_title(f"{what} Bland-Altman (n = {diff.size})")
    ax.set_xlabel(f"mean of predicted and reference {what} ({unit})")
    ax.set_ylabel(f"predicted - reference {what} ({unit})")
    save_figure(fig, path)


def _plot_dice(rep: SegmentationReport, path: Path) -> None:
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    data = [rep.values(c, "dice") for c in SEG_CLASSES]
    ax.boxplot(data, tick_labels=list(SEG_CLASSES))
    for i, d in enumerate(data):
        ax.scatter(np.full(d.size, i + 1.0), d, s=8, alpha=0.4, color=f"C{i}")
    ax.set_title(f"Dice per class (n = {len(rep.rows)} images)")
    ax.set_xlabel("structure (PS = pubic symphysis, FH = fetal head, ALL = union)")
    ax.set_ylabel("Dice (smoothed, 1 = perfect)")
    ax.set_ylim(-0.02, 1.02)
    save_figure(fig, path)


def write_report(result: Any, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``summary.json``, ``per_image.csv`` and PNG plots of evaluation results.

    Parameters
    ----------
    result : LandmarkReport or SegmentationReport, or a sequence of them
        From :func:`partus.evaluate.evaluate_landmarks` / :func:`partus.evaluate.evaluate_segmentation`
        (at most one of each). With both, the summary also holds the FH-PS-AoP 2023 score (AoP MAE
        from the landmark report).
    out_dir : path
        Created if needed.

    Returns
    -------
    dict of str to Path
        The files written: ``summary``, ``per_image``, and as applicable ``landmark_errors``
        (``landmark_errors.png``), ``aop_bland_altman``, ``hsd_bland_altman``, ``dice_boxplot``.

    Raises
    ------
    ValueError
        If ``result`` holds anything else, or two reports of one kind.
    """
    reports = list(result) if isinstance(result, list | tuple) else [result]
    lm = [r for r in reports if isinstance(r, LandmarkReport)]
    seg = [r for r in reports if isinstance(r, SegmentationReport)]
    if not reports or len(lm) + len(seg) != len(reports) or len(lm) > 1 or len(seg) > 1:
        kinds = [type(r).__name__ for r in reports]
        raise ValueError(f"result must be a LandmarkReport and/or a SegmentationReport, got {kinds}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    summary: dict[str, Any] = {}
    if lm:
        summary["landmarks"] = lm[0].summary
    if seg:
        summary["segmentation"] = seg[0].summary
    if lm and seg and math.isfinite(lm[0].summary["aop"]["mae"]):
        summary["fhpsaop2023_score"] = seg[0].score(lm[0].summary["aop"]["mae"])
    text = json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n"
    files["summary"] = out / "summary.json"
    _atomic_write(files["summary"], lambda tmp: tmp.write_text(text, encoding="utf-8"))

    columns, rows = _merge_rows(reports)

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)

    files["per_image"] = out / "per_image.csv"
    _atomic_write(files["per_image"], write_csv)

    if lm:
        rep = lm[0]
        files["landmark_errors"] = out / "landmark_errors.png"
        _plot_landmark_errors(rep, files["landmark_errors"])
        files["aop_bland_altman"] = out / "aop_bland_altman.png"
        _plot_bland_altman(rep.aop_pred, rep.aop_gt, "AoP", "deg", files["aop_bland_altman"])
        if rep.hsd_pred is not None and rep.hsd_gt is not None:
            files["hsd_bland_altman"] = out / "hsd_bland_altman.png"
            _plot_bland_altman(rep.hsd_pred, rep.hsd_gt, "HSD", rep.summary["unit"], files["hsd_bland_altman"])
    if seg:
        files["dice_boxplot"] = out / "dice_boxplot.png"
        _plot_dice(seg[0], files["dice_boxplot"])
    return files
