"""Cross-validation folds grouped by near-duplicate cluster (frames of one video never straddle folds)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["group_kfold"]


def group_kfold(groups: Sequence[object], n_folds: int, *, seed: int = 0) -> np.ndarray:
    """Assign each item to a fold so that every group lies in exactly one fold, folds balanced in size.

    Groups are shuffled (seeded), then placed largest first into the currently smallest fold.

    Parameters
    ----------
    groups : sequence, length N
        Group key per item (e.g. ``near_dup_cluster``); ``None`` makes an item its own group.
    n_folds : int
        At least 2, and at most the number of groups.
    seed : int

    Returns
    -------
    ndarray of int, shape (N,)
        The fold of each item, in ``0 .. n_folds - 1``.

    Examples
    --------
    >>> group_kfold(["a", "a", "b", "c"], 2).tolist()
    [0, 0, 1, 1]
    """
    keys = [("__single__", i) if g is None else ("group", g) for i, g in enumerate(groups)]
    counts = Counter(keys)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if n_folds > len(counts):
        raise ValueError(f"n_folds ({n_folds}) exceeds the number of groups ({len(counts)})")
    rng = np.random.default_rng(seed)
    order = list(counts)
    rng.shuffle(order)
    order.sort(key=lambda k: -counts[k])  # stable: ties keep the shuffled order
    sizes = np.zeros(n_folds, int)
    fold_of: dict[object, int] = {}
    for k in order:
        f = int(np.argmin(sizes))
        fold_of[k] = f
        sizes[f] += counts[k]
    return np.array([fold_of[k] for k in keys])
