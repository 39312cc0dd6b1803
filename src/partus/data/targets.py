"""Training targets: Gaussian heatmaps on a (strided) grid, label perturbation. NumPy only."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["gaussian_heatmaps", "perturb_points"]


def gaussian_heatmaps(points: Any, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-height Gaussians at sub-pixel ``(x, y)`` points of a grid of ``size = (height, width)``.

    Points are in the grid's own pixel coordinates (centres at integers; map image points with
    :func:`partus.decode.to_grid_coords`). A NaN point gives an all-zero map (nothing to find).

    Returns
    -------
    ndarray, shape (K, height, width), float32
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (K, 2), got {p.shape}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = size
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    out = np.zeros((len(p), h, w), np.float32)
    for k, (x, y) in enumerate(p):
        if np.isfinite(x) and np.isfinite(y):
            gx = np.exp(-((xs - x) ** 2) / (2 * sigma**2))
            gy = np.exp(-((ys - y) ** 2) / (2 * sigma**2))
            out[k] = np.outer(gy, gx)
    return out


def perturb_points(points: Any, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian label noise (paper 2): each coordinate plus N(0, sigma^2) px; sigma 0 returns a copy."""
    p = np.array(points, dtype=np.float64)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return p + rng.normal(0.0, sigma, p.shape) if sigma > 0 else p
