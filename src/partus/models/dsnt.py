"""Differentiable spatial to numerical transform (DSNT) and its heatmap regularisers (pure torch).

Nibali et al., "Numerical coordinate regression with convolutional neural networks", arXiv:1801.07372
(2018); used for intrapartum landmarks by paper 4 (DSNT-DeepUNet).

Coordinates are ``(x, y)`` in **pixels of the heatmap grid**: pixel centres at integers ``0..W-1`` and
``0..H-1``, origin at the top-left pixel centre (the partus convention, :mod:`partus.conventions`).
They are *not* the ``[-1, 1]`` normalised coordinates of the DSNT paper; divide by ``(W, H)`` for a
resolution-independent loss, and map to the input image with :func:`partus.decode.to_image_coords`.

Divergences are in nats. ``js_regulariser`` lies in ``[0, ln 2]``; ``kl_regulariser`` is unbounded.
"""

from __future__ import annotations

import torch

__all__ = [
    "dsnt",
    "gaussian_distribution",
    "js_divergence",
    "js_regulariser",
    "kl_divergence",
    "kl_regulariser",
    "spatial_softmax",
]

#: Floor under probabilities inside logarithms (keeps 0 * log 0 = 0 and all gradients finite).
EPS = 1e-12


def _check_maps(t: torch.Tensor, name: str) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim != 4:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, K, H, W), got {shape}")


def _check_points(target_xy: torch.Tensor, probs: torch.Tensor) -> None:
    if not isinstance(target_xy, torch.Tensor) or target_xy.shape != (*probs.shape[:2], 2):
        got = tuple(target_xy.shape) if isinstance(target_xy, torch.Tensor) else type(target_xy).__name__
        raise ValueError(f"target_xy must have shape {(*probs.shape[:2], 2)} (N, K, 2), got {got}")


def spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the pixels of each map, so every ``(n, k)`` map sums to 1.

    Parameters
    ----------
    logits : torch.Tensor, shape (N, K, H, W)

    Returns
    -------
    torch.Tensor, shape (N, K, H, W)
        Probabilities.
    """
    _check_maps(logits, "logits")
    return torch.softmax(logits.flatten(2), dim=-1).reshape(logits.shape)


def dsnt(probs: torch.Tensor) -> torch.Tensor:
    """Expected ``(x, y)`` under each probability map (the DSNT layer).

    Parameters
    ----------
    probs : torch.Tensor, shape (N, K, H, W)
        Maps that each sum to 1, e.g. from :func:`spatial_softmax` (not renormalised here).

    Returns
    -------
    torch.Tensor, shape (N, K, 2)
        ``(x, y)`` in heatmap-grid pixels (pixel centres at integers ``0..W-1``, ``0..H-1``).

    Examples
    --------
    >>> p = torch.zeros(1, 1, 4, 5)
    >>> p[0, 0, 1, 3] = 1.0
    >>> dsnt(p).tolist()
    [[[3.0, 1.0]]]
    """
    _check_maps(probs, "probs")
    h, w = probs.shape[-2:]
    xs = torch.arange(w, dtype=probs.dtype, device=probs.device)
    ys = torch.arange(h, dtype=probs.dtype, device=probs.device)
    x = (probs.sum(dim=2) * xs).sum(dim=-1)
    y = (probs.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def gaussian_distribution(target_xy: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Isotropic Gaussians centred on ``target_xy``, normalised to sum to 1 over the grid.

    Computed as a softmax of ``-d**2 / (2 sigma**2)``, so it stays normalised (never NaN) even for a
    centre far outside the grid.

    Parameters
    ----------
    target_xy : torch.Tensor, shape (N, K, 2)
        Centres ``(x, y)`` in heatmap-grid pixels.
    size : (int, int)
        Grid ``(height, width)``.
    sigma : float
        Standard deviation in heatmap-grid pixels, > 0.

    Returns
    -------
    torch.Tensor, shape (N, K, height, width)
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (heatmap pixels), got {sigma!r}")
    if not isinstance(target_xy, torch.Tensor) or target_xy.ndim != 3 or target_xy.shape[-1] != 2:
        raise ValueError(f"target_xy must be a tensor of shape (N, K, 2), got {getattr(target_xy, 'shape', None)}")
    h, w = size
    dtype = target_xy.dtype if target_xy.is_floating_point() else torch.get_default_dtype()
    xs = torch.arange(w, dtype=dtype, device=target_xy.device)
    ys = torch.arange(h, dtype=dtype, device=target_xy.device)
    dx2 = (xs - target_xy[..., 0:1].to(dtype)) ** 2  # (N, K, W)
    dy2 = (ys - target_xy[..., 1:2].to(dtype)) ** 2  # (N, K, H)
    log_density = -(dy2[..., :, None] + dx2[..., None, :]) / (2.0 * sigma**2)
    return spatial_softmax(log_density)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = sum p (log p - log q)`` per map; ``(N, K, H, W)`` distributions -> ``(N, K)``."""
    _check_maps(p, "p")
    _check_maps(q, "q")
    return (p * (torch.log(p.clamp_min(EPS)) - torch.log(q.clamp_min(EPS)))).sum(dim=(2, 3))


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence per map, ``(KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``.

    Symmetric (``js_divergence(p, q) == js_divergence(q, p)``), 0 iff ``p == q``, at most ``ln 2``.
    ``(N, K, H, W)`` distributions -> ``(N, K)``.
    """
    m = 0.5 * (p + q)
    return 0.5 * (kl_divergence(p, m) + kl_divergence(q, m))


def js_regulariser(probs: torch.Tensor, target_xy: torch.Tensor, sigma: float) -> torch.Tensor:
    """JS divergence between predicted maps and normalised Gaussians at the targets (DSNT paper's choice).

    Symmetric in the sense that the divergence does not depend on which distribution is the
    prediction: for two landmarks ``a`` and ``b``,
    ``js_regulariser(gaussian_distribution(a, ...), b, s) == js_regulariser(gaussian_distribution(b, ...), a, s)``.

    Parameters
    ----------
    probs : torch.Tensor, shape (N, K, H, W)
        Predicted probability maps (:func:`spatial_softmax` of the logits).
    target_xy : torch.Tensor, shape (N, K, 2)
        Ground truth ``(x, y)`` in heatmap-grid pixels.
    sigma : float
        Target Gaussian standard deviation in heatmap-grid pixels.

    Returns
    -------
    torch.Tensor, shape (N, K)
        In nats, in ``[0, ln 2]``; reduce (mean) in the loss.
    """
    _check_maps(probs, "probs")
    _check_points(target_xy, probs)
    target = gaussian_distribution(target_xy, tuple(probs.shape[-2:]), sigma).to(probs.dtype)
    return js_divergence(probs, target)


def kl_regulariser(probs: torch.Tensor, target_xy: torch.Tensor, sigma: float) -> torch.Tensor:
    """``KL(target || probs)`` with the target a normalised Gaussian, as in paper 4 (``KL(H_gt || H_hat)``).

    Parameters and return value as :func:`js_regulariser`; the result is in nats, ``>= 0`` and
    unbounded (not symmetric).
    """
    _check_maps(probs, "probs")
    _check_points(target_xy, probs)
    target = gaussian_distribution(target_xy, tuple(probs.shape[-2:]), sigma).to(probs.dtype)
    return kl_divergence(target, probs)
