"""Test-time entropy minimisation (Tent: Wang et al., ICLR 2021) on a new site's unlabelled scans.

AdaBN (:mod:`partus.train.adabn`) only re-estimates each BatchNorm layer's statistics. Tent also moves the
BatchNorm layers' scales and shifts, every other weight frozen, to make the network surer on the site's
scans: it minimises the entropy of the segmentation head's per-pixel class probabilities and of the DSNT
head's landmark maps (each map's entropy divided by that of a uniform map), with the BatchNorm layers
normalising by each batch's own statistics, as in training. ``partus adapt`` then re-estimates the
statistics for the new scales (AdaBN), since inference normalises by stored statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InputError

__all__ = ["entropy_adapt", "site_entropy"]


def site_entropy(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean per-pixel entropy of the ``seg`` softmax plus the mean normalised entropy of the ``dsnt`` maps."""
    seg = out["seg"].log_softmax(1)
    h_seg = -(seg.exp() * seg).sum(1).mean()
    maps = out["dsnt"].flatten(2).log_softmax(-1)
    h_maps = -(maps.exp() * maps).sum(-1).mean() / math.log(maps.shape[-1])
    return h_seg + h_maps


def entropy_adapt(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    input_size: int,
    epochs: int = 1,
    lr: float = 1e-3,
    batch: int = 16,
    seed: int = 0,
) -> list[float]:
    """Fit the BatchNorm scales and shifts of ``model`` to ``images`` by entropy minimisation (Adam, ``lr``,
    ``epochs`` passes in shuffled batches); the other weights and the stored statistics' use are unchanged
    (the statistics themselves move with the batches: re-estimate them after). Returns each step's loss;
    the model is left in eval mode with every parameter trainable again.

    Raises
    ------
    InputError
        If no usable image is given.
    """
    from ..io import as_gray_uint8
    from ..preprocess import resize_image, to_input
    from ..quality import check_image

    usable = [g for g in (as_gray_uint8(np.asarray(im)) for im in images) if check_image(g) is None]
    if not usable:
        raise InputError("scans", "no usable scan to adapt to")
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    params = [p for m in layers for p in (m.weight, m.bias) if p is not None]
    trainable = {p: p.requires_grad for p in model.parameters()}
    device = next(model.parameters()).device
    x_all = to_input(np.stack([resize_image(g, input_size) for g in usable]))
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(params, lr=lr)
    losses: list[float] = []
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        model.eval()
        for m in layers:
            m.train()
        for _ in range(epochs):
            order = rng.permutation(len(usable))
            for chunk in np.array_split(order, max(1, -(-len(usable) // batch))):
                if len(chunk) < 2:  # a batch's statistics need two scans
                    continue
                loss = site_entropy(model(torch.from_numpy(x_all[chunk]).to(device)))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
    finally:
        for p, flag in trainable.items():
            p.requires_grad_(flag)
        model.eval()
    return losses
