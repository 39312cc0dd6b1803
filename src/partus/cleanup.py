"""Mask clean-up of Zhang et al. (paper 1, Stage 1 post-processing) for predicted segmentations."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ._validation import binary_array as _binary
from .conventions import FH, PS

__all__ = ["clean_label_map", "clean_mask"]


def clean_mask(
    mask: Any, *, fill_holes: bool = True, border_repair: bool = True, max_notch: float = 0.05
) -> np.ndarray:
    """Clean a binary segmentation: keep the largest component, fill holes, repair border notches.

    The three steps of Zhang et al. (paper 1, Stage 1 post-processing):

    1. *denoising*: keep only the largest 8-connected component;
    2. *hole filling*: background regions not connected (4-connectivity) to the image border are filled;
    3. *border repair*: a structure cut by the image border can enclose background together with the
       border, which step 2 cannot fill. Background components that touch the border, are enclosed by
       the structure and the border only (do not reach the bulk of the background), and are smaller than
       ``max_notch`` x the structure's area are filled.

    Parameters
    ----------
    mask : array_like, shape (H, W), bool or integer (non-zero = foreground)

    Returns
    -------
    ndarray of bool, shape (H, W)
        Empty if the input is empty.
    """
    m = _binary(mask, "mask")
    if not m.any():
        return m.copy()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out = labels == keep
    if not (fill_holes or border_repair):
        return out
    bn, blab, bstats, _ = cv2.connectedComponentsWithStats((~out).astype(np.uint8), connectivity=4)
    border_ids = set(np.unique(np.concatenate([blab[0], blab[-1], blab[:, 0], blab[:, -1]]))) - {0}
    areas = bstats[:, cv2.CC_STAT_AREA]
    largest_bg = 1 + int(np.argmax(areas[1:])) if bn > 1 else 0
    limit = max_notch * out.sum()
    for k in range(1, bn):
        if k in border_ids:
            if border_repair and k != largest_bg and areas[k] <= limit:
                out[blab == k] = True
        elif fill_holes:
            out[blab == k] = True
    return out


def clean_label_map(label_map: Any, *, ps_label: int = PS, fh_label: int = FH) -> np.ndarray:
    """Apply :func:`clean_mask` to PS and FH; returns a label map with the same label values.

    Where the cleaned structures overlap (e.g. filling a head hole that held symphysis pixels), the
    symphysis keeps its pixels.
    """
    lab = np.asarray(label_map)
    _binary(lab, "label_map")
    out = np.zeros(lab.shape, dtype=lab.dtype)
    out[clean_mask(lab == fh_label)] = fh_label
    out[clean_mask(lab == ps_label)] = ps_label
    return out
