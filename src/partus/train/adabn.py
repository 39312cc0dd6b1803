"""AdaBN (Li et al. 2016): a trained network's BatchNorm statistics re-estimated on a new site's images.

Every BatchNorm layer normalises its input with running statistics collected during training. On another
scanner's images those statistics are off; re-estimating them on the site's own scans, with every weight
left as it is, makes the layers normalise the site's images as they did the training scans. No labels,
no gradients: one forward pass over the scans. ``partus adapt`` does this by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InputError

__all__ = ["recalibrate_bn", "recalibrate_refiner_bn"]


def recalibrate_bn(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    input_size: int,
    batch: int = 16,
    *,
    prior: float = 0.0,
    prefix: str = "",
) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance of ``model`` on ``images``
    (preprocessed as at inference; images the verdict would refuse as blank or too small are skipped).

    Each batch's statistics count in proportion to its size (an exact mean over images of the per-batch
    means; the variance is the size-weighted mean of the batches' unbiased variances). Weights are
    unchanged; the model is left in eval mode. Returns the number of images used. ``prior``: the old
    statistics' share of the result (0: the site's alone); ``prefix``: only the layers whose module name
    starts with it (e.g. ``encoder``). Neither helped on simulated sites (``benchmarks/ACCURACY.md``).

    Raises
    ------
    InputError
        If no usable image is given.
    """
    from ..io import as_gray_uint8
    from ..preprocess import resize_image, to_input
    from ..quality import check_image

    grays = [as_gray_uint8(np.asarray(im)) for im in images]
    usable = [g for g in grays if check_image(g) is None]
    if not usable:
        raise InputError("scans", "no usable scan to estimate BatchNorm statistics on")
    _recalibrate(model, len(usable), lambda idx: to_input(np.stack([resize_image(usable[i], input_size) for i in idx])),
                 batch, prior, prefix)  # fmt: skip
    return len(usable)


def recalibrate_refiner_bn(
    net: torch.nn.Module, rc, grays: Sequence[np.ndarray], points: Sequence[np.ndarray], batch: int = 16
) -> int:
    """Re-estimate the BatchNorm statistics of a symphysis refiner ``net`` (its settings ``rc``, a
    :class:`~partus.config.RefineConfig`) on the windows it would read in ``grays`` around ``points`` (each
    scan's first landmark estimate ``(3, 2)`` in its pixels, in the usual display, as
    :class:`~partus.refine.Refiner` gets them). Returns the number of windows used.

    Raises
    ------
    InputError
        If no scan has the landmarks a window needs.
    """
    from ..refine import windows

    _, crops = windows([np.asarray(g) for g in grays], list(points), rc.work, rc.crop, rc.centre, list(rc.refines),
                       rc.n_points)  # fmt: skip
    if not crops:
        raise InputError("scans", "no scan with symphysis landmarks to estimate the refiner's statistics on")
    x = (np.stack(crops).astype(np.float32) / np.float32(255.0))[:, None]
    _recalibrate(net, len(crops), lambda idx: x[idx], batch)
    return len(crops)


def _recalibrate(model: torch.nn.Module, n: int, inputs, batch: int, prior: float = 0.0, prefix: str = "") -> None:
    """Running statistics of the BatchNorm layers (named ``prefix...``) from ``n`` inputs, ``inputs(indices)``
    giving a batch; ``prior`` is the old statistics' share of the result."""
    if not 0.0 <= prior < 1.0:
        raise ValueError(f"prior must be in [0, 1), got {prior}")
    model.eval()
    layers = [m for name, m in model.named_modules()
              if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and name.startswith(prefix)]  # fmt: skip
    if not layers:
        raise ValueError(f"no BatchNorm layer named {prefix!r}...")
    saved = [m.momentum for m in layers]
    old = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
    device = next(model.parameters()).device
    for m in layers:
        m.reset_running_stats()
        m.train()
    seen = 0
    try:
        with torch.no_grad():
            for chunk in np.array_split(np.arange(n), -(-n // batch)):
                seen += len(chunk)
                for m in layers:  # running <- running + (n_b / n_seen) * (batch - running)
                    m.momentum = len(chunk) / seen
                model(torch.from_numpy(np.ascontiguousarray(inputs(chunk))).to(device))
        if prior > 0:
            for m, (mean, var) in zip(layers, old, strict=True):
                m.running_mean.mul_(1 - prior).add_(prior * mean)
                m.running_var.mul_(1 - prior).add_(prior * var)
    finally:
        for m, momentum in zip(layers, saved, strict=True):
            m.momentum = momentum
            m.eval()
