"""Cross-validation folds grouped by near-duplicate cluster (frames of one video never straddle folds)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["block_kfold", "group_kfold"]


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


def block_kfold(order_keys: Sequence[object], groups: Sequence[object], n_folds: int) -> np.ndarray:
    """Contiguous blocks: items sorted by ``order_keys`` (e.g. the scan id) cut into ``n_folds`` blocks of
    near-equal size, a group kept whole in the block of its first item.

    Ids were assigned in acquisition order, so a block holds whole sessions: a harder split than
    :func:`group_kfold`, whose folds mix scans of every session.

    Examples
    --------
    >>> block_kfold([3, 1, 2, 4], ["a", "b", "b", "c"], 2).tolist()
    [1, 0, 0, 1]
    """
    n = len(order_keys)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} items")
    if n_folds < 2 or n_folds > n:
        raise ValueError(f"n_folds must be in 2..{n}, got {n_folds}")
    order = sorted(range(n), key=lambda i: (order_keys[i], i))
    keys = [("__single__", i) if groups[i] is None else ("group", groups[i]) for i in range(n)]
    first = {}  # each group's rank of its first item, in order
    for rank, i in enumerate(order):
        first.setdefault(keys[i], rank)
    if n_folds > len(first):
        raise ValueError(f"n_folds ({n_folds}) exceeds the number of groups ({len(first)})")
    fold_of: dict[object, int] = {}
    f = in_fold = 0
    for gi, (key, rank) in enumerate(first.items()):
        full = rank >= (f + 1) * n / n_folds
        needed = len(first) - gi <= n_folds - 1 - f  # the groups left only just fill the folds left
        if in_fold and f < n_folds - 1 and (full or needed):
            f, in_fold = f + 1, 0
        fold_of[key] = f
        in_fold += 1
    return np.array([fold_of[k] for k in keys])
