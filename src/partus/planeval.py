"""Scoring the ``standard_plane`` column of predictions (IUGC 2024's classification task): accuracy, AUC,
F1 and MCC with the official definitions (:func:`partus.clsmetrics.classification_metrics`).

The truth comes from a CSV ``Filename,standard_plane`` (1 standard plane, 0 not), or from IUGC 2024 frame
names ``<video>_<frame>_<class>.png`` (class 6 is the standard plane; 3 none, 4 symphysis only and 5 head
only are not).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .clsmetrics import classification_metrics
from .errors import InputError
from .io import parse_iugc2024_name, read_predictions_csv
from .io._table import load_table

__all__ = ["evaluate_planes", "plane_labels_from_names", "read_plane_labels"]

#: The IUGC 2024 frame class of a standard plane.
STANDARD_CLASS = 6


def read_plane_labels(path: str | os.PathLike) -> dict[str, int]:
    """``Filename -> 0/1`` from a CSV with columns ``Filename`` and ``standard_plane``."""
    table = load_table(path)
    cols = table.columns({"Filename": (), "standard_plane": ("plane", "label")}, {})
    labels = {}
    for line, row in table.rows:
        value = row[cols["standard_plane"]].strip()
        if value not in ("0", "1"):
            raise InputError(path, f"line {line}: standard_plane must be 0 or 1, got {value!r}")
        labels[row[cols["Filename"]]] = int(value)
    return labels


def plane_labels_from_names(names: list[str]) -> dict[str, int]:
    """``name -> 0/1`` from IUGC 2024 frame names (class 6 is the standard plane)."""
    return {n: int(parse_iugc2024_name(n)[2] == STANDARD_CLASS) for n in names}


def evaluate_planes(
    pred_csv: str | os.PathLike, labels: dict[str, int] | None = None, *, threshold: float = 0.5
) -> dict[str, Any]:
    """Metrics of a prediction CSV's ``standard_plane`` against ``labels`` (default: from the IUGC 2024
    names of its rows). Rows without a probability (no plane head, unreadable input) count as
    predicted non-standard, and are reported as ``n_without_score``; rows without a label are ignored.

    Raises
    ------
    InputError
        If no row has a label, or the predictions carry no ``standard_plane`` at all.
    """
    rows = read_predictions_csv(pred_csv)
    if labels is None:
        labels = plane_labels_from_names(list(rows))
    names = [n for n in rows if n in labels]
    if not names:
        raise InputError(pred_csv, "no prediction row has a plane label (check the file names)")
    scores = np.array([rows[n].standard_plane for n in names], float)
    if not np.isfinite(scores).any():
        raise InputError(pred_csv, "no standard_plane probabilities: the model has no plane head")
    missing = int((~np.isfinite(scores)).sum())
    result = classification_metrics(np.array([labels[n] for n in names]), np.nan_to_num(scores, nan=0.0), threshold)
    result.update({"threshold": threshold, "n_without_score": missing, "n_unlabelled": len(rows) - len(names)})
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
