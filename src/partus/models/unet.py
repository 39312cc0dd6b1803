"""Plain U-Net (Ronneberger et al., MICCAI 2015) with heatmap, DSNT and segmentation heads.

Registered as ``heatmap_unet`` (paper 3: U-Net heatmap regression), ``dsnt_unet`` (paper 4: U-Net +
DSNT coordinate layer) and ``seg_unet`` (background / PS / FH segmentation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._base import DenseModel, positive_int
from ._registry import register_model
from .blocks import UNetDecoder, UNetEncoder, Upsample

__all__ = ["UNet", "dsnt_unet", "heatmap_unet", "seg_unet"]

#: Encoder down-sampling levels of the plain U-Net (so inputs must be multiples of 2**4 = 16).
LEVELS = 4


def check_img_size(img_size: int | Sequence[int] | None, divisor: int) -> tuple[int, int] | None:
    """Normalise ``img_size`` to ``(height, width)``; each side must be a positive multiple of ``divisor``."""
    if img_size is None:
        return None
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 or s % divisor for s in size):
        raise ValueError(
            f"img_size must be an int or (height, width), positive multiples of {divisor}, got {img_size!r}"
        )
    return size  # type: ignore[return-value]


class UNet(DenseModel):
    """U-Net: 4 down levels of double ``3x3 conv + BN + ReLU``, a mirrored decoder with skips, 1x1 head.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for B-mode ultrasound).
    out_channels : int
        Output maps: landmarks (heatmap, dsnt) or classes (segmentation).
    features : int
        Width of the first level; channels are ``features * (1, 2, 4, 8, 16)``.
    output_stride : int
        1, 2 or 4. Values above 1 stop the decoder early (1 or 2 stages fewer), which roughly halves the
        CPU cost at stride 4.
    kind : ModelKind or str
        ``"heatmap"``, ``"dsnt"`` or ``"segmentation"``: what the logits mean (it does not change the net).
    upsample : Upsample or str
        ``"transpose"`` (default) or ``"bilinear"``.
    img_size : int or (int, int), optional
        Accepted for the shared constructor vocabulary and validated (multiples of 16); the network
        itself works at any size that is a multiple of 16.

    Examples
    --------
    >>> import torch
    >>> net = UNet(out_channels=3, features=8, output_stride=4)
    >>> net(torch.zeros(2, 1, 64, 96)).shape
    torch.Size([2, 3, 16, 24])
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 3,
        features: int = 16,
        output_stride: int = 1,
        kind: str = "heatmap",
        upsample: Upsample | str = "transpose",
        img_size: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            kind=kind,
            output_stride=output_stride,
            required_divisor=2**LEVELS,
        )
        self.features = positive_int(features, "features")
        self.img_size = check_img_size(img_size, self.required_divisor)
        self.encoder = UNetEncoder(in_channels, features, LEVELS)
        self.decoder = UNetDecoder.for_encoder(self.encoder.channels, self.output_stride, upsample)
        self.head = nn.Conv2d(self.decoder.out_channels, out_channels, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` -> decoder map ``(N, C, H / output_stride, W / output_stride)``."""
        feats = self.encoder(x)
        return self.decoder(feats[-1], feats[-2::-1])


@register_model("heatmap_unet")
def heatmap_unet(*, in_channels: int = 1, out_channels: int = 3, features: int = 16, output_stride: int = 1, **kwargs):
    """U-Net heatmap regressor (paper 3): one heatmap logit map per landmark. ``kind="heatmap"``.

    Keyword arguments as :class:`UNet` (``upsample``, ``img_size``); ``kind`` is fixed.
    """
    return UNet(
        in_channels=in_channels,
        out_channels=out_channels,
        features=features,
        output_stride=output_stride,
        kind="heatmap",
        **kwargs,
    )


@register_model("dsnt_unet")
def dsnt_unet(*, in_channels: int = 1, out_channels: int = 3, features: int = 16, output_stride: int = 1, **kwargs):
    """U-Net whose logits feed the DSNT layer (paper 4). ``kind="dsnt"``.

    Apply :func:`partus.models.dsnt.spatial_softmax` then :func:`partus.models.dsnt.dsnt` to get
    ``(x, y)`` per landmark in output-grid pixels. Keyword arguments as :class:`UNet`.
    """
    return UNet(
        in_channels=in_channels,
        out_channels=out_channels,
        features=features,
        output_stride=output_stride,
        kind="dsnt",
        **kwargs,
    )


@register_model("seg_unet")
def seg_unet(*, in_channels: int = 1, out_channels: int = 3, features: int = 16, output_stride: int = 1, **kwargs):
    """U-Net segmenter: per-pixel logits for background, PS and FH. ``kind="segmentation"``.

    Keyword arguments as :class:`UNet`.
    """
    return UNet(
        in_channels=in_channels,
        out_channels=out_channels,
        features=features,
        output_stride=output_stride,
        kind="segmentation",
        **kwargs,
    )
