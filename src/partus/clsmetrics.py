"""Binary classification metrics of the IUGC 2024 standard-plane task: accuracy, AUC, F1, MCC."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["classification_metrics"]


def classification_metrics(y_true: Any, y_score: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Binary metrics of the IUGC 2024 standard-plane task.

    Parameters
    ----------
    y_true : array_like of {0, 1} or bool, shape (N,)
    y_score : array_like of float, shape (N,)
        Scores or hard labels; predicted positive where ``y_score >= threshold``.

    Returns
    -------
    dict
        ``accuracy``; ``auc`` (Mann-Whitney with mid-ranks: a tied positive/negative pair counts 1/2;
        NaN when ``y_true`` holds one class, the reason in ``auc_note``); ``f1`` and ``mcc`` (0 when
        undefined, as scikit-learn); ``tp``, ``fp``, ``tn``, ``fn``, ``n``.

    Raises
    ------
    ValueError
        On empty or different shapes, labels other than 0/1, or non-finite scores.
    """
    y, s = np.asarray(y_true), np.asarray(y_score, dtype=float)
    if y.ndim != 1 or s.shape != y.shape or not y.size:
        raise ValueError(f"y_true and y_score must have one shape (N,), N > 0, got {y.shape} and {s.shape}")
    if y.dtype.kind not in "biuf" or np.setdiff1d(np.unique(y), [0, 1]).size:
        raise ValueError(f"y_true must hold only 0 and 1, got values {np.unique(y)[:5].tolist()}")
    if not np.isfinite(s).all():
        raise ValueError("y_score must be finite")
    y = y.astype(bool)
    yhat = s >= threshold
    tp, fp, tn, fn = (int(v.sum()) for v in (yhat & y, yhat & ~y, ~yhat & ~y, ~yhat & y))
    n1, n0 = tp + fn, tn + fp
    auc, note = math.nan, None
    if n1 == 0 or n0 == 0:
        note = f"AUC undefined: y_true holds only class {int(n1 > 0)}"
    else:
        _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
        mid_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based mid-rank of each distinct score
        auc = float((mid_rank[inv][y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    mcc = (tp * tn - fp * fn) / den if den else 0.0
    return {"accuracy": (tp + tn) / y.size, "auc": auc, "auc_note": note, "f1": f1, "mcc": mcc,
            "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": int(y.size)}  # fmt: skip
