"""Name -> builder registry: the one way the CLI, configs and training code refer to a model."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["create_model", "list_models", "register_model"]

_Builder = TypeVar("_Builder", bound=Callable[..., nn.Module])
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[_Builder], _Builder]:
    """Register a model builder (a class or a function returning an ``nn.Module``) under ``name``.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"heatmap_unet"``.

    Returns
    -------
    decorator
        Returns the builder unchanged.

    Raises
    ------
    ValueError
        If ``name`` is empty or already registered.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")

    def decorator(builder: _Builder) -> _Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].__qualname__})")
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


#: Initial bias of sigmoid heatmap heads: logit(0.01).
HEATMAP_PRIOR_BIAS = -math.log(99.0)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with constructor keyword arguments ``kwargs``.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    **kwargs
        Constructor arguments (``in_channels``, ``out_channels``, ``features``, ... ).

    Returns
    -------
    torch.nn.Module
        The model, in training mode, with fresh (random) weights.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the available names.

    Examples
    --------
    >>> from partus.models import create_model
    >>> model = create_model("heatmap_unet", features=8, output_stride=4)
    >>> model.kind, model.output_stride, model.required_divisor
    ('heatmap', 4, 16)
    """
    try:
        builder = _REGISTRY[name]
    except (KeyError, TypeError):
        available = ", ".join(list_models())
        raise ValueError(f"unknown model {name!r}; available models: {available}") from None
    model = builder(**kwargs)
    head = getattr(model, "head", None)
    if getattr(model, "kind", None) == "heatmap" and getattr(head, "bias", None) is not None:
        # Sigmoid heatmaps are ~all background: start every pixel at p = 0.01 instead of 0.5, so the
        # first steps learn where the landmarks are rather than how to switch the background off.
        with torch.no_grad():
            head.bias.fill_(HEATMAP_PRIOR_BIAS)
    return model
