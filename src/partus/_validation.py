"""Argument checks shared by the numeric modules; messages name the argument, expectation and value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def point_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim not in (1, 2) or arr.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (2,) or (N, 2), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def binary_array(mask: Any, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {arr.shape}")
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a boolean or integer array, got dtype {arr.dtype}")
    return arr.astype(bool, copy=False)


def contour_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
        raise ValueError(f"{name} must be a non-empty (N, 2) array of (x, y) points, got shape {arr.shape}")
    return arr


def spacing_array(pixel_spacing: Any) -> np.ndarray:
    sp = np.asarray(pixel_spacing, dtype=float)
    if sp.shape != (2,) or not np.isfinite(sp).all() or (sp <= 0).any():
        raise ValueError(f"pixel_spacing must be two positive numbers (sx, sy) in mm/px, got {pixel_spacing!r}")
    return sp


def same_shape(pred: Any, gt: Any, check: Any, names: tuple[str, str] = ("pred", "gt")) -> tuple[Any, Any]:
    p, g = check(pred, names[0]), check(gt, names[1])
    if p.shape != g.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {p.shape} and {g.shape}")
    return p, g


def image_names(names: Sequence[str] | None, n: int) -> list[str]:
    out = [str(i) for i in range(n)] if names is None else [str(s) for s in names]
    if len(out) != n:
        raise ValueError(f"names must have {n} entries (one per image), got {len(out)}")
    return out
