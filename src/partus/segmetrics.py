"""Segmentation metrics with the official definitions (``docs/conventions.md``, "Metrics").

:func:`dice` (smoothed), :func:`hausdorff` (= SimpleITK ``HausdorffDistanceImageFilter``: between the
foreground *pixel* sets), :func:`hd95`, :func:`asd` (= MONAI ``compute_hausdorff_distance(percentile=95)``
and ``compute_average_surface_distance(symmetric=True)``: between *edge* pixels), per class
(:func:`segmentation_metrics`), over a set (:func:`evaluate_segmentation`), and the FH-PS-AoP 2023 score
(:func:`fhpsaop2023_score`). Distances in px, or mm given ``pixel_spacing=(sx, sy)``. NumPy + OpenCV;
SciPy is imported only for anisotropic spacing or images larger than ~1000 px.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ._validation import image_names as _names
from ._validation import same_shape as _pair
from ._validation import spacing_array as _spacing
from .conventions import FH, PS

__all__ = [
    "EMPTY_PENALTY",
    "SegmentationReport",
    "asd",
    "dice",
    "evaluate_segmentation",
    "fhpsaop2023_score",
    "hausdorff",
    "hd95",
    "segmentation_metrics",
]

#: HD, HD95 and ASD given when exactly one of prediction and ground truth is empty (px or mm).
EMPTY_PENALTY = 100.0
#: Segmentation classes, name -> label values; ``ALL`` is PS union FH.
SEG_CLASSES: dict[str, tuple[int, ...]] = {"PS": (PS,), "FH": (FH,), "ALL": (PS, FH)}
SEG_METRICS = ("dice", "hd", "hd95", "asd")


def _mask(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) mask, got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"{name} must be a boolean or numeric mask, got dtype {arr.dtype}")
        bad = np.setdiff1d(np.unique(arr), [0, 1])
        if bad.size:
            raise ValueError(f"{name} must be binary (values 0 and 1), got values {bad[:5].tolist()}")
    return arr.astype(bool)


def _label_map(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must be a 2-D (H, W) integer label map, got shape {arr.shape}, {arr.dtype}")
    bad = np.setdiff1d(np.unique(arr), [0, PS, FH])
    if bad.size:
        raise ValueError(f"{name} must hold only labels 0, {PS} (PS), {FH} (FH), got {bad[:5].tolist()}")
    return arr


def dice(pred: Any, gt: Any) -> float:
    """Smoothed Dice ``(2|P & G| + 1) / (|P| + |G| + 1)`` of binary ``(H, W)`` masks.

    An empty ``pred`` with non-empty ``gt`` scores 0; both empty score 1.

    Examples
    --------
    >>> dice([[1, 1, 0]], [[1, 0, 0]])
    0.75
    """
    p, g = _pair(pred, gt, _mask)
    sp, sg = int(p.sum()), int(g.sum())
    if sp == 0 and sg > 0:
        return 0.0
    return (2.0 * int((p & g).sum()) + 1.0) / (sp + sg + 1.0)


def _edt(target: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance (float64) of every pixel to the nearest True pixel; ``sampling=(sy, sx)``.

    OpenCV's exact transform returns float32; squared pixel distances are integers, so rounding
    ``d**2`` recovers them exactly up to ~4e6 (checked); used up to 2e6 (1000 x 1000 images).
    """
    h, w = target.shape
    if sampling[0] == sampling[1] and h * h + w * w <= 2_000_000:
        d = cv2.distanceTransform((~target).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return np.sqrt(np.rint(d.astype(np.float64) ** 2)) * sampling[0]
    from scipy.ndimage import distance_transform_edt  # anisotropic spacing or large images only

    return distance_transform_edt(~target, sampling=sampling)


def _edges(m: np.ndarray) -> np.ndarray:
    """``m XOR erode(m)``, 3x3 cross, outside the image = background (MONAI ``get_mask_edges``)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    eroded = cv2.erode(m.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return m & ~eroded.astype(bool)


def _distances(pred: Any, gt: Any, pixel_spacing: Any) -> dict[str, float]:
    p, g = _pair(pred, gt, _mask)
    if not p.any() or not g.any():
        v = EMPTY_PENALTY if p.any() or g.any() else 0.0
        return {"hd": v, "hd95": v, "asd": v}
    samp = np.ones(2) if pixel_spacing is None else _spacing(pixel_spacing)[::-1]
    hd = max(_edt(g, samp)[p].max(), _edt(p, samp)[g].max())
    ep, eg = _edges(p), _edges(g)
    d_pg, d_gp = _edt(eg, samp)[ep], _edt(ep, samp)[eg]
    hd95_ = max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))
    return {"hd": float(hd), "hd95": float(hd95_), "asd": float(np.concatenate([d_pg, d_gp]).mean())}


def hausdorff(pred: Any, gt: Any, *, pixel_spacing: Any = None) -> float:
    """Symmetric Hausdorff distance between the foreground pixel sets (as SimpleITK's filter).

    ``max(max_{p in P} d(p, G), max_{g in G} d(g, P))`` over *all* foreground pixels (not contours)
    of binary ``(H, W)`` masks. 0 if both are empty, :data:`EMPTY_PENALTY` if exactly one is.
    Returns px, or mm with ``pixel_spacing=(sx, sy)``.
    """
    return _distances(pred, gt, pixel_spacing)["hd"]


def hd95(pred: Any, gt: Any, *, pixel_spacing: Any = None) -> float:
    """95th-percentile Hausdorff distance (as MONAI ``compute_hausdorff_distance(percentile=95)``).

    Edge pixels ``E = mask XOR erode(mask)`` (3x3 cross, outside = background). Per direction, the 95th
    percentile (linear interpolation) of the distances from each edge pixel of one mask to the nearest
    edge pixel of the other; the larger of the two. Empty masks as in :func:`hausdorff`.
    """
    return _distances(pred, gt, pixel_spacing)["hd95"]


def asd(pred: Any, gt: Any, *, pixel_spacing: Any = None) -> float:
    """Symmetric average surface distance (as MONAI ``compute_average_surface_distance(symmetric=True)``).

    The mean of the edge-to-nearest-edge distances of both directions pooled (so weighted by each
    mask's number of edge pixels). Edges and empty masks as in :func:`hd95`.
    """
    return _distances(pred, gt, pixel_spacing)["asd"]


def segmentation_metrics(pred_label: Any, gt_label: Any, *, pixel_spacing: Any = None) -> dict[str, dict]:
    """Dice, HD, HD95 and ASD per class of two ``(H, W)`` label maps (0 background, 1 PS, 2 FH).

    Returns ``{"PS": {"dice", "hd", "hd95", "asd"}, "FH": {...}, "ALL": {...}}`` (``ALL`` = PS union FH).
    """
    p, g = _pair(pred_label, gt_label, _label_map, ("pred_label", "gt_label"))
    out = {}
    for cls, labels in SEG_CLASSES.items():
        pm, gm = np.isin(p, labels), np.isin(g, labels)
        out[cls] = {"dice": dice(pm, gm), **_distances(pm, gm, pixel_spacing)}
    return out


def fhpsaop2023_score(dice: Any, hd: Any, asd: Any, aop_mae: float) -> float:
    """FH-PS-AoP 2023 score: 0.25 mDice + 0.25 [0.5 (1 - mHD/100) + 0.5 (1 - mASD/100)] + 0.5 (1 - dAoP/180).

    ``dice``, ``hd``, ``asd``: array_like of the per-image values of PS, FH and ALL, each averaged over
    all its entries (= the mean of the three class means); ``aop_mae``: AoP MAE in degrees.
    """
    md, mh, ma = (float(np.mean(np.asarray(v, dtype=float))) for v in (dice, hd, asd))
    return 0.25 * md + 0.25 * (0.5 * (1 - mh / 100) + 0.5 * (1 - ma / 100)) + 0.5 * (1 - aop_mae / 180)


@dataclass(frozen=True)
class SegmentationReport:
    """Result of :func:`evaluate_segmentation`: ``rows[i][cls][metric]``, ``summary`` (JSON-ready)."""

    names: list[str]
    rows: list[dict[str, dict[str, float]]]
    summary: dict[str, Any] = field(default_factory=dict)

    def values(self, cls: str, metric: str) -> np.ndarray:
        """``(N,)`` values of one metric of one class (``"PS"``, ``"FH"``, ``"ALL"``)."""
        return np.array([r[cls][metric] for r in self.rows])

    def per_image(self) -> list[dict[str, Any]]:
        """One dict per image: ``name`` and ``<metric>_<class>`` columns."""
        return [
            {"name": n, **{f"{m}_{c}": r[c][m] for c in SEG_CLASSES for m in SEG_METRICS}}
            for n, r in zip(self.names, self.rows, strict=True)
        ]

    def score(self, aop_mae: float) -> float:
        """FH-PS-AoP 2023 score of these masks with the given AoP MAE (degrees)."""
        d, h, a = ([self.values(c, m) for c in SEG_CLASSES] for m in ("dice", "hd", "asd"))
        return fhpsaop2023_score(d, h, a, aop_mae)


def evaluate_segmentation(
    pred_labels: Any, gt_labels: Any, *, names: Sequence[str] | None = None, pixel_spacing: Any = None
) -> SegmentationReport:
    """:func:`segmentation_metrics` over images: ``(N, H, W)`` arrays or sequences of ``(H, W)`` maps.

    ``summary``: ``n_images``, ``unit``, ``per_class`` means, ``mean_dice``/``mean_hd``/``mean_hd95``/
    ``mean_asd`` over PS, FH and ALL, and ``n_empty_pred`` per class (absent from the prediction only).
    """
    n = len(gt_labels)
    if len(pred_labels) != n or n == 0:
        raise ValueError(f"pred_labels and gt_labels must have equal lengths > 0, got {len(pred_labels)}, {n}")
    names = _names(names, n)
    rows = [
        segmentation_metrics(p, g, pixel_spacing=pixel_spacing) for p, g in zip(pred_labels, gt_labels, strict=True)
    ]
    per_class = {c: {m: float(np.mean([r[c][m] for r in rows])) for m in SEG_METRICS} for c in SEG_CLASSES}
    empty = {c: 0 for c in SEG_CLASSES}
    for p, g in zip(pred_labels, gt_labels, strict=True):
        for c, labels in SEG_CLASSES.items():
            empty[c] += int(not np.isin(p, labels).any() and np.isin(g, labels).any())
    summary: dict[str, Any] = {"n_images": n, "unit": "px" if pixel_spacing is None else "mm"}
    summary["per_class"] = per_class
    summary.update({f"mean_{m}": float(np.mean([per_class[c][m] for c in SEG_CLASSES])) for m in SEG_METRICS})
    summary["n_empty_pred"] = empty
    return SegmentationReport(names, rows, summary)
