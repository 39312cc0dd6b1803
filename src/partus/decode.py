"""Heatmaps to coordinates: argmax, sub-pixel refinement (quadratic / DARK), soft-argmax, confidence.

Pure NumPy (the inference path needs no torch). Heatmaps are ``(K, H, W)`` or ``(N, K, H, W)``;
coordinates come back as ``(..., K, 2)`` in ``(x, y)`` order of the *heatmap grid* (pixel centres at
integers). :func:`to_image_coords` maps them to the input image: the one place where the output stride
and the resize to the network input are undone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import cv2
import numpy as np

from .conventions import parse_enum

__all__ = [
    "FUSION", "HEAD_WEIGHTS", "DecodeMethod", "decode_heatmaps", "fuse_landmarks", "peak_mass", "to_grid_coords",
    "to_image_coords", "upsample_labels",
]  # fmt: skip

#: Weight of each head's landmark estimate when the heads of *one multitask network* are fused: the
#: segmentation rule's estimate counts half (it beat equal weights under the weighted mean, ``benchmarks/
#: ACCURACY.md``, "Fusing the heads"). Under the median (:data:`FUSION`) these weights do not change one
#: network's answer (the weighted median of three is their median); they matter in ensembles, where
#: separate networks weigh the same (paper 1, eq. 4) and a multitask network's heads share its weight in
#: these proportions.
HEAD_WEIGHTS = {"segmentation": 0.5, "heatmap": 1.0, "dsnt": 1.0}

#: How the landmark estimates (heads and ensemble members, weighted by :data:`HEAD_WEIGHTS`) are fused:
#: the weighted coordinate-wise median (:func:`fuse_landmarks`). For one multitask network it is the
#: median of its three heads, so one head that fails cannot drag the points away; the mean of the other
#: two when the segmentation finds no landmarks. It beat the weighted mean out of fold on two blocks CVs
#: of the multitask config, on plain scans and over the shift suite (``benchmarks/ACCURACY.md``, "Fusing
#: the heads").
FUSION = "median"


class DecodeMethod(StrEnum):
    """How a heatmap peak becomes a coordinate.

    ``argmax``: the hottest pixel (integer coordinates).
    ``quadratic``: argmax refined by a Newton step on a quadratic fit of the 3x3 neighbourhood
    (of the log heatmap for positive heatmaps, which is exact for a Gaussian peak).
    ``dark``: DARK (Zhang et al., CVPR 2020): Gaussian-smooth the heatmap with the training sigma first,
    then the same Newton step on the log; robust on the flat or noisy peaks of real predictions.
    ``soft_argmax``: the probability-weighted mean over a window around the peak (``window`` px);
    ``window=0`` uses the whole map (as DSNT does in training).
    """

    ARGMAX = "argmax"
    QUADRATIC = "quadratic"
    DARK = "dark"
    SOFT_ARGMAX = "soft_argmax"


def _as_maps(heatmaps: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    h = np.asarray(heatmaps, dtype=np.float64)
    if h.ndim not in (3, 4):
        raise ValueError(f"heatmaps must have shape (K, H, W) or (N, K, H, W), got {h.shape}")
    if h.shape[-1] < 1 or h.shape[-2] < 1:
        raise ValueError(f"heatmaps must not be empty, got {h.shape}")
    if not np.all(np.isfinite(h)):
        raise ValueError("heatmaps must be finite (got NaN or inf)")
    lead = h.shape[:-2]
    return h.reshape(-1, *h.shape[-2:]), lead


def _gaussian_blur(m: np.ndarray, sigma: float) -> np.ndarray:
    k = int(2 * round(3 * sigma) + 1)
    return cv2.GaussianBlur(m, (k, k), sigma, borderType=cv2.BORDER_REPLICATE)


def _newton_offset(m: np.ndarray, x: int, y: int) -> np.ndarray:
    """Offset ``-H^-1 g`` from central differences at ``(x, y)``; zero at borders or non-maxima.

    Fitted to the log of the 3x3 neighbourhood when it is positive (exact for a Gaussian peak),
    else to the values themselves.
    """
    h, w = m.shape
    if not (0 < x < w - 1 and 0 < y < h - 1):
        return np.zeros(2)
    p = m[y - 1 : y + 2, x - 1 : x + 2]
    if p.min() > 0:
        p = np.log(p)
    dx = 0.5 * (p[1, 2] - p[1, 0])
    dy = 0.5 * (p[2, 1] - p[0, 1])
    dxx = p[1, 2] - 2 * p[1, 1] + p[1, 0]
    dyy = p[2, 1] - 2 * p[1, 1] + p[0, 1]
    dxy = 0.25 * (p[2, 2] - p[2, 0] - p[0, 2] + p[0, 0])
    hess = np.array([[dxx, dxy], [dxy, dyy]])
    det = dxx * dyy - dxy * dxy
    if det <= 0 or dxx >= 0:  # not a maximum: keep the argmax
        return np.zeros(2)
    off = -np.linalg.solve(hess, np.array([dx, dy]))
    return np.clip(off, -1.0, 1.0)


def _soft_argmax(m: np.ndarray, x: int, y: int, window: int) -> np.ndarray:
    h, w = m.shape
    if window > 0:
        x0, x1 = max(0, x - window), min(w, x + window + 1)
        y0, y1 = max(0, y - window), min(h, y + window + 1)
    else:
        x0, x1, y0, y1 = 0, w, 0, h
    p = np.clip(m[y0:y1, x0:x1], 0, None)
    total = p.sum()
    if total <= 0:
        return np.array([x, y], float)
    # the expected coordinates from the marginals: (p * xs).sum() without building the grids
    return np.array([p.sum(0) @ np.arange(x0, x1), p.sum(1) @ np.arange(y0, y1)]) / total


def peak_mass(maps: np.ndarray, radius: int = 2) -> np.ndarray:
    """Confidence of DSNT maps ``(K, h, w)`` (each a probability distribution): the mass within ``radius`` grid
    pixels (a square) of each map's peak, ``(K,)``."""
    out = np.empty(len(maps))
    for k, m in enumerate(maps):
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        out[k] = m[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1].sum()
    return out


def decode_heatmaps(
    heatmaps: Any,
    *,
    method: DecodeMethod | str = DecodeMethod.DARK,
    sigma: float = 2.0,
    window: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and confidences of heatmap peaks.

    Parameters
    ----------
    heatmaps : array_like, shape (K, H, W) or (N, K, H, W)
        One map per landmark, higher = more likely (sigmoid outputs, or softmax probabilities).
    method : {"argmax", "quadratic", "dark", "soft_argmax"}
        See :class:`DecodeMethod`.
    sigma : float
        Gaussian sigma (heatmap px) used in training; the DARK smoothing kernel.
    window : int
        Half-size of the soft-argmax window (0: the whole map).

    Returns
    -------
    coords : ndarray, shape (..., K, 2)
        ``(x, y)`` on the heatmap grid.
    confidence : ndarray, shape (..., K)
        The peak value of the (unsmoothed) heatmap: for sigmoid heatmaps trained on unit-height
        Gaussians, ~1 for a confident detection and ~0 where nothing was found.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:32, 0:32]
    >>> hm = np.exp(-((xx - 10.3) ** 2 + (yy - 20.6) ** 2) / (2 * 2.0**2))[None]
    >>> xy, conf = decode_heatmaps(hm, method="quadratic")
    >>> np.round(xy, 3).tolist()
    [[10.3, 20.6]]
    """
    method = parse_enum(DecodeMethod, method, "method")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    maps, lead = _as_maps(heatmaps)
    coords = np.zeros((len(maps), 2))
    conf = np.zeros(len(maps))
    for i, m in enumerate(maps):
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        conf[i] = m[y, x]
        if method == DecodeMethod.ARGMAX:
            coords[i] = (x, y)
        elif method == DecodeMethod.SOFT_ARGMAX:
            coords[i] = _soft_argmax(m, int(x), int(y), window)
        else:
            src = _gaussian_blur(m, sigma) if method == DecodeMethod.DARK else m
            if method == DecodeMethod.DARK:
                y, x = np.unravel_index(int(np.argmax(src)), src.shape)
            coords[i] = np.array([x, y], float) + _newton_offset(src, int(x), int(y))
    return coords.reshape(*lead, 2), conf.reshape(lead)


def fuse_landmarks(points: Any, weights: Any = None, method: str = "mean") -> np.ndarray:
    """Fuse several landmark estimates ``(M, ..., 3, 2)`` coordinate by coordinate.

    ``mean``: the weighted mean (paper 1, eq. 4 when the weights are equal). ``median``: the weighted
    median (the value where the sorted estimates' cumulative weight reaches half, the mean of the two
    neighbours on an exact tie), which one failing estimate out of three cannot move far. A NaN estimate
    is left out of its coordinate; a coordinate no estimate has stays NaN.
    """
    stack = np.asarray(points, float)
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, float)
    if w.shape != (len(stack),) or not np.isfinite(w).all() or (w < 0).any() or not w.any():
        raise ValueError(f"need one finite, non-negative weight per estimate ({len(stack)}), not all zero; got {w}")
    if method not in ("mean", "median"):
        raise ValueError(f"method must be 'mean' or 'median', not {method!r}")
    w = w.reshape(-1, *([1] * (stack.ndim - 1)))
    seen = np.isfinite(stack)
    if method == "median":
        return _weighted_median(stack, w * seen)
    total = (w * seen).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w * np.where(seen, stack, 0.0)).sum(axis=0) / total, np.nan)


def _weighted_median(stack: np.ndarray, w: np.ndarray) -> np.ndarray:
    order = np.argsort(np.where(w > 0, stack, np.inf), axis=0)  # unweighted and NaN estimates last
    vals = np.take_along_axis(stack, order, axis=0)
    cum = np.cumsum(np.take_along_axis(np.broadcast_to(w, stack.shape), order, axis=0), axis=0)
    half = cum[-1] / 2
    tol = 1e-9 * cum[-1]
    lo = np.argmax(cum >= half - tol, axis=0)[None]
    hi = np.argmax(cum > half + tol, axis=0)[None]
    with np.errstate(invalid="ignore"):
        mid = (np.take_along_axis(vals, lo, axis=0) + np.take_along_axis(vals, hi, axis=0))[0] / 2
    return np.where(cum[-1] > 0, mid, np.nan)


def to_image_coords(coords: Any, heatmap_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """Map ``(x, y)`` from a heatmap grid to the image it was computed from.

    The heatmap covers the whole image (after any resize), so pixel *edges* align: with
    ``s = image / heatmap`` per axis, ``x_img = (x_hm + 0.5) * s_x - 0.5`` (pixel centres at integers).

    Parameters
    ----------
    coords : array_like, shape (..., 2)
    heatmap_size, image_size : (height, width)
    """
    return _rescale(coords, heatmap_size, image_size, names=("heatmap", "image"))


def to_grid_coords(coords: Any, image_size: tuple[int, int], grid_size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`to_image_coords`: ``(x, y)`` of an image to a resized grid (input or heatmap)."""
    return _rescale(coords, image_size, grid_size, names=("image", "grid"))


def _rescale(coords: Any, src: tuple[int, int], dst: tuple[int, int], names: tuple[str, str]) -> np.ndarray:
    """``(x, y)`` from a ``src = (H, W)`` pixel grid to a ``dst`` grid covering the same area (edges align)."""
    c = np.asarray(coords, dtype=float)
    if c.shape[-1] != 2:
        raise ValueError(f"coords must have shape (..., 2), got {c.shape}")
    (sh, sw), (dh, dw) = src, dst
    if min(sh, sw, dh, dw) <= 0:
        raise ValueError(f"sizes must be positive, got {names[0]} {src} and {names[1]} {dst}")
    return (c + 0.5) * np.array([dw / sw, dh / sh]) - 0.5


def upsample_labels(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label map at ``size = (H, W)`` from class probabilities ``(C, h, w)``: bilinear upsampling of the
    probabilities, then argmax (smoother contours than upsampling the labels by nearest neighbour)."""
    h, w = size
    hwc = np.ascontiguousarray(np.moveaxis(probs, 0, -1))  # channels last: one resize, a contiguous argmax
    if probs.shape[1:] != (h, w):
        hwc = cv2.resize(hwc, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
    labels = np.zeros((h, w), np.uint8)  # argmax over channels (first maximum wins), without a slow reduce
    best = hwc[..., 0].copy()
    for c in range(1, hwc.shape[-1]):
        better = hwc[..., c] > best
        labels[better] = c
        np.maximum(best, hwc[..., c], out=best)
    return labels
