"""Base class and shared argument checks of all dense-prediction models (heatmaps, DSNT, segmentation)."""

from __future__ import annotations

from enum import StrEnum

import torch
from torch import nn

from ..conventions import parse_enum

__all__ = ["DenseModel", "ModelKind"]

#: Output strides a model may be built with (input size / output size).
OUTPUT_STRIDES = (1, 2, 4)


class ModelKind(StrEnum):
    """What the raw logits of a model mean, i.e. which loss and decoder apply to them.

    ``heatmap``: one heatmap per landmark (sigmoid or MSE on the logits, then peak decoding).
    ``dsnt``: one map per landmark that becomes a probability distribution by a spatial softmax
    (:func:`partus.models.dsnt.spatial_softmax`) and a coordinate by :func:`partus.models.dsnt.dsnt`.
    ``segmentation``: per-pixel class scores (softmax over channels: background, PS, FH).
    ``multitask``: a dict of the three above (``seg``, ``heatmap``, ``dsnt``) plus image-level ``cls``
    logits (:mod:`partus.models.multitask`).
    """

    HEATMAP = "heatmap"
    DSNT = "dsnt"
    SEGMENTATION = "segmentation"
    MULTITASK = "multitask"


def positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_output_stride(output_stride: object) -> int:
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    return int(output_stride)  # type: ignore[call-overload]


def padded_size(height: int, width: int, divisor: int) -> tuple[int, int]:
    """Smallest ``(height, width)`` at least as large as the input whose sides are multiples of ``divisor``."""
    return (-(-height // divisor) * divisor, -(-width // divisor) * divisor)


class DenseModel(nn.Module):
    """Common contract of partus models: ``forward = forward_head(forward_features(x))`` on a checked input.

    Subclasses build ``self.head`` (a module mapping features to ``out_channels`` logits) and implement
    :meth:`forward_features`.

    Attributes
    ----------
    in_channels, out_channels : int
        Input image channels and output maps (landmarks or classes).
    kind : str
        ``"heatmap"``, ``"dsnt"`` or ``"segmentation"`` (a :class:`ModelKind` value, stored as a plain ``str``).
    output_stride : int
        Input size / output size: 1 (full resolution), 2 or 4.
    required_divisor : int
        Input height and width must be multiples of this (the total down-sampling of the encoder).
    """

    head: nn.Module

    def __init__(
        self, *, in_channels: int, out_channels: int, kind: str, output_stride: int, required_divisor: int
    ) -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kind: str = parse_enum(ModelKind, kind, "kind").value  # a plain str (YAML/JSON friendly)
        self.output_stride = check_output_stride(output_stride)
        self.required_divisor = positive_int(required_divisor, "required_divisor")

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(N, in_channels, H, W)`` with ``H, W`` multiples of the divisor.

        Skipped while tracing (ONNX / TorchScript export), where the shapes are symbolic.
        """
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            return
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = int(x.shape[2]), int(x.shape[3])
        d = self.required_divisor
        if h % d or w % d or h == 0 or w == 0:
            ph, pw = padded_size(max(h, 1), max(w, 1), d)
            raise ValueError(
                f"input height and width ({h}, {w}) do not fit this model: "
                f"expected multiples of {d}; pad to ({ph}, {pw})"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features at the output resolution, ``(N, C, H / output_stride, W / output_stride)``."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map :meth:`forward_features` output to logits ``(N, out_channels, h, w)``."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits (no sigmoid or softmax).

        Parameters
        ----------
        x : torch.Tensor, shape (N, in_channels, H, W)
            ``H`` and ``W`` multiples of :attr:`required_divisor`.

        Returns
        -------
        torch.Tensor, shape (N, out_channels, H / output_stride, W / output_stride)

        Raises
        ------
        ValueError
            On a wrong channel count or a size that is not a multiple of :attr:`required_divisor`; the
            message gives the padded size that would work.
        """
        self.check_input(x)
        return self.forward_head(self.forward_features(x))
