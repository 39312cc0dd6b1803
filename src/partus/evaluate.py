"""Evaluation metrics, with the official definitions of ``docs/conventions.md`` ("Metrics").

Landmarks: :func:`point_errors`, :func:`mre`, :func:`landmark_mean_errors`, :func:`sdr`,
:func:`aop_errors`, :func:`evaluate_landmarks`; prediction files against ground-truth files:
:func:`partus.fileeval.evaluate_files`. A prediction with a NaN coordinate is *missing* (not
measurable): counted in ``n_missing`` and by default left out of every mean (:class:`MissingPolicy`).

Segmentation (binary ``(H, W)`` masks; label maps 0 background, 1 PS, 2 FH): :func:`dice` (smoothed),
:func:`hausdorff` (= SimpleITK ``HausdorffDistanceImageFilter``: between the foreground *pixel* sets),
:func:`hd95`, :func:`asd` (= MONAI ``compute_hausdorff_distance(percentile=95)`` and
``compute_average_surface_distance(symmetric=True)``: between *edge* pixels), :func:`segmentation_metrics`,
:func:`evaluate_segmentation`, :func:`fhpsaop2023_score`.

Classification (IUGC 2024 standard plane): :func:`classification_metrics`.

Distances are in px, or in mm given ``pixel_spacing=(sx, sy)`` (mm per pixel along x, y). Pure NumPy
and OpenCV; SciPy is imported only for anisotropic spacing or images larger than ~1000 px.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from ._validation import image_names as _names
from ._validation import same_shape as _pair
from ._validation import spacing_array as _spacing
from .clsmetrics import classification_metrics
from .conventions import LANDMARKS, parse_enum
from .geometry import aop_rows
from .segmetrics import (
    EMPTY_PENALTY,
    SegmentationReport,
    asd,
    dice,
    evaluate_segmentation,
    fhpsaop2023_score,
    hausdorff,
    hd95,
    segmentation_metrics,
)

__all__ = [
    "EMPTY_PENALTY",
    "LandmarkReport",
    "MissingPolicy",
    "SegmentationReport",
    "aop_errors",
    "asd",
    "classification_metrics",
    "dice",
    "evaluate_landmarks",
    "evaluate_segmentation",
    "fhpsaop2023_score",
    "hausdorff",
    "hd95",
    "landmark_mean_errors",
    "mre",
    "point_errors",
    "sdr",
    "segmentation_metrics",
]


class MissingPolicy(StrEnum):
    """What to do with missing (NaN) predictions.

    ``exclude`` (default): count them in ``n_missing`` and compute the metrics over the others.
    ``raise``: raise ValueError (for benchmarks that need a prediction for every image).
    ``penalize``: a missing point or HSD counts as an error of ``penalty`` (in the errors' unit), a
    missing AoP as 180 deg.
    """

    EXCLUDE = "exclude"
    RAISE = "raise"
    PENALIZE = "penalize"


# --------------------------------------------------------------------------- validation
def _landmark_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.shape == (3, 2):
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (3, 2):
        raise ValueError(f"{name} must have shape (N, 3, 2) (x, y of PS1, PS2, FH1), got {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} must not contain inf (NaN marks a missing prediction)")
    return arr


def _vector(value: Any, name: str, n: int, *, finite: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if np.isinf(arr).any() or (finite and np.isnan(arr).any()):
        raise ValueError(f"{name} must be finite{'' if finite else ' or NaN'}, got {arr.tolist()[:10]}")
    return arr


# --------------------------------------------------------------------------- landmark metrics
def point_errors(pred: Any, gt: Any, *, pixel_spacing: Any = None) -> np.ndarray:
    """Euclidean error of each landmark.

    Parameters
    ----------
    pred, gt : array_like, shape (N, 3, 2) or (3, 2)
        ``(x, y)`` of PS1, PS2, FH1 per image. ``pred`` may hold NaN (missing); ``gt`` must be finite.
    pixel_spacing : (sx, sy), optional
        mm per pixel along x and y: errors in mm instead of px.

    Returns
    -------
    ndarray, shape (N, 3)
        Errors, NaN where the prediction is missing.

    Raises
    ------
    ValueError
        On wrong or different shapes, inf, NaN in ``gt``, or a bad ``pixel_spacing``.

    Examples
    --------
    >>> point_errors([[0, 0], [5, 5], [1, 1]], [[0, 0], [5, 5], [4, 5]]).tolist()
    [[0.0, 0.0, 5.0]]
    """
    p, g = _pair(pred, gt, _landmark_array)
    if np.isnan(g).any():
        raise ValueError("gt must be finite: ground truth cannot be missing")
    d = p - g if pixel_spacing is None else (p - g) * _spacing(pixel_spacing)
    return np.sqrt((d**2).sum(axis=-1))


def _errors(errors: Any) -> np.ndarray:
    arr = np.asarray(errors, dtype=float)
    if arr.size == 0 or np.isinf(arr).any() or (np.nan_to_num(arr) < 0).any():
        raise ValueError(f"errors must be a non-empty array of values >= 0 or NaN, got {arr.tolist()[:10]}")
    return arr


def mre(errors: Any) -> float:
    """Mean radial error over all entries of ``errors``, NaN (missing) left out; NaN if all are."""
    e = _errors(errors)
    return float(e[np.isfinite(e)].mean()) if np.isfinite(e).any() else math.nan


def landmark_mean_errors(errors: Any) -> dict[str, float]:
    """Mean error per landmark, ``{"PS1": .., "PS2": .., "FH1": ..}``, of ``(N, 3)`` errors (NaN left out)."""
    e = _errors(errors)
    if e.ndim != 2 or e.shape[1] != 3:
        raise ValueError(f"errors must have shape (N, 3), got {e.shape}")
    return {name: mre(e[:, k]) for k, name in enumerate(LANDMARKS)}


def sdr(errors: Any, radii: Sequence[float] = (5, 10, 20)) -> dict[float, float]:
    """Successful detection rate: the share of (non-NaN) errors ``<= r`` for each radius ``r``.

    Examples
    --------
    >>> sdr([1.0, 5.0, 7.0, float("nan")], radii=(5, 10))
    {5: 0.6666666666666666, 10: 1.0}
    """
    e = _errors(errors)
    e = e[np.isfinite(e)]
    if not len(radii) or not all(r > 0 for r in radii):
        raise ValueError(f"radii must be positive numbers, got {list(radii)}")
    return {r: float(np.mean(e <= r)) if e.size else math.nan for r in radii}


def _gt_aop(g: np.ndarray) -> np.ndarray:
    ga = aop_rows(g)
    if np.isnan(ga).any():
        bad = np.flatnonzero(np.isnan(ga)).tolist()[:10]
        raise ValueError(f"gt rows {bad} have no AoP: PS2 or FH1 coincides with PS1")
    return ga


def aop_errors(pred: Any, gt: Any) -> np.ndarray:
    """Signed AoP error ``AoP(pred) - AoP(gt)`` (degrees) from ``(N, 3, 2)`` points; NaN if ``pred`` has none.

    Examples
    --------
    >>> aop_errors([[0, 0], [-1, 0], [0, 1]], [[0, 0], [-1, 0], [1, 1]]).round(6).tolist()
    [-45.0]
    """
    p, g = _pair(pred, gt, _landmark_array)
    return aop_rows(p) - _gt_aop(g)


def _agreement(signed: np.ndarray) -> dict[str, float]:
    """n, MAE, median AE, bias, SD and 95% limits of agreement (Bland-Altman) of the finite errors."""
    s = signed[np.isfinite(signed)]
    if not s.size:
        return {"n": 0, **dict.fromkeys(("mae", "median_ae", "bias", "sd", "loa_low", "loa_high"), math.nan)}
    bias, sd = float(s.mean()), float(s.std(ddof=1)) if s.size > 1 else 0.0
    mae, med = float(np.abs(s).mean()), float(np.median(np.abs(s)))
    return {"n": int(s.size), "mae": mae, "median_ae": med, "bias": bias, "sd": sd,
            "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}  # fmt: skip


@dataclass(frozen=True)
class LandmarkReport:
    """Result of :func:`evaluate_landmarks`: arrays per image, ``summary`` (JSON-ready dict) and
    :meth:`per_image` (list of row dicts; ``pandas.DataFrame(report.per_image())`` makes a table)."""

    names: list[str]
    errors: np.ndarray  # (N, 3), NaN where missing
    aop_pred: np.ndarray  # (N,) degrees
    aop_gt: np.ndarray
    hsd_pred: np.ndarray | None
    hsd_gt: np.ndarray | None
    missing: np.ndarray  # (N,) bool
    summary: dict[str, Any] = field(default_factory=dict)

    def per_image(self) -> list[dict[str, Any]]:
        """One dict per image: name, missing, ``err_PS1/PS2/FH1``, ``mre``, ``aop_*`` and ``hsd_*``."""
        rows = []
        for i, name in enumerate(self.names):
            row: dict[str, Any] = {"name": name, "missing": bool(self.missing[i])}
            row.update({f"err_{lm}": float(self.errors[i, k]) for k, lm in enumerate(LANDMARKS)})
            row["mre"] = float(self.errors[i].mean())
            pairs = [("aop", self.aop_pred, self.aop_gt), ("hsd", self.hsd_pred, self.hsd_gt)]
            for key, pr, gt in pairs:
                if pr is not None and gt is not None:
                    row.update({f"{key}_pred": pr[i], f"{key}_gt": gt[i], f"{key}_error": pr[i] - gt[i]})
            rows.append(row)
        return rows


def evaluate_landmarks(
    pred: Any,
    gt: Any,
    *,
    names: Sequence[str] | None = None,
    pred_aop: Any = None,
    gt_aop: Any = None,
    pred_hsd: Any = None,
    gt_hsd: Any = None,
    pixel_spacing: Any = None,
    radii: Sequence[float] = (5, 10, 20),
    missing: MissingPolicy | str = MissingPolicy.EXCLUDE,
    penalty: float = EMPTY_PENALTY,
) -> LandmarkReport:
    """Landmark, AoP and HSD errors over a set of images.

    Parameters
    ----------
    pred, gt : array_like, shape (N, 3, 2)
        ``(x, y)`` of PS1, PS2, FH1. A ``pred`` row holding NaN is a missing prediction.
    names : sequence of str, length N, optional
        Image names for the per-image table (default ``"0"``, ``"1"``, ...).
    pred_aop, gt_aop : array_like, shape (N,), optional
        AoP (degrees) to use instead of the AoP of the points (e.g. organisers' stored values);
        ``pred_aop`` may hold NaN (missing).
    pred_hsd, gt_hsd : array_like, shape (N,), optional
        HSD in the unit of the point errors (px, or mm with ``pixel_spacing``); both or neither.
    pixel_spacing : (sx, sy), optional
        Point errors in mm. AoP always comes from the pixel coordinates, as in the official rule.
    radii : sequence of float
        SDR radii, in the errors' unit.
    missing : {"exclude", "raise", "penalize"}
        :class:`MissingPolicy`; ``penalty`` is the point/HSD error of a missing prediction.

    Returns
    -------
    LandmarkReport
        ``summary``: ``n_images``, ``n_missing``, ``unit``, ``mre``, ``per_landmark``, ``sdr`` (keys
        ``str(r)``), ``aop`` and ``hsd`` as ``{n, mae, median_ae, bias, sd, loa_low, loa_high}`` with
        ``bias`` the mean of ``pred - gt`` and ``n`` the images used.

    Raises
    ------
    ValueError
        On inconsistent shapes, NaN in ground truth, or a missing prediction with ``missing="raise"``.
    """
    policy = parse_enum(MissingPolicy, missing, "missing")
    errors = point_errors(pred, gt, pixel_spacing=pixel_spacing)
    p, g = _landmark_array(pred, "pred"), _landmark_array(gt, "gt")
    n = len(errors)
    names = _names(names, n)
    a_pred = aop_rows(p) if pred_aop is None else _vector(pred_aop, "pred_aop", n)
    a_gt = _gt_aop(g) if gt_aop is None else _vector(gt_aop, "gt_aop", n, finite=True)
    if (pred_hsd is None) != (gt_hsd is None):
        raise ValueError("pred_hsd and gt_hsd must be given together")
    h_pred = None if pred_hsd is None else _vector(pred_hsd, "pred_hsd", n)
    h_gt = None if gt_hsd is None else _vector(gt_hsd, "gt_hsd", n, finite=True)
    miss = np.isnan(p).any(axis=(1, 2))
    a_err = a_pred - a_gt
    h_err = None if h_pred is None else h_pred - h_gt
    gaps = miss | np.isnan(a_err) | (False if h_err is None else np.isnan(h_err))
    if policy == MissingPolicy.RAISE and gaps.any():
        bad = [names[i] for i in np.flatnonzero(gaps)[:10]]
        raise ValueError(f"missing='raise' but {int(gaps.sum())} images lack a prediction, e.g. {bad}")
    e = errors.copy()
    if policy == MissingPolicy.PENALIZE:
        e[np.isnan(e)] = penalty
        a_err[np.isnan(a_err)] = 180.0
        if h_err is not None:
            h_err[np.isnan(h_err)] = penalty
    summary: dict[str, Any] = {
        "n_images": n,
        "n_missing": int(miss.sum()),
        "missing_policy": str(policy),
        "unit": "px" if pixel_spacing is None else "mm",
        "mre": mre(e),
        "per_landmark": landmark_mean_errors(e),
        "sdr": {str(r): v for r, v in sdr(e, radii).items()},
        "aop": _agreement(a_err),
        "hsd": None if h_err is None else _agreement(h_err),
    }
    return LandmarkReport(names, errors, a_pred, a_gt, h_pred, h_gt, miss, summary)
