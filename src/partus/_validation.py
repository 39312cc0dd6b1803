"""Argument checks shared by the numeric modules; messages name the argument, expectation and value."""

from __future__ import annotations

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
