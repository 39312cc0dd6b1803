"""One multi-task network (paper 5's shape): a shared MobileNetV2 encoder and U-Net decoder with heads for
PS/FH segmentation, landmark heatmaps, DSNT coordinate maps, and image-level classification.

One pass gives masks (hence HSD and the official landmark rule), two landmark estimates and the
image-level logits; inference fuses them as an ensemble of three members would (paper 1, eq. 4).
The classification head reads the encoder's deepest map (global average pool -> linear). Its outputs are
named by ``cls_names``: ``mirrored`` (is the display left-right mirrored?) is the first; the video issue's
``standard_plane`` takes the next slot.

``forward`` returns a dict of raw logits::

    {"seg": (N, 3, H, W), "heatmap": (N, 3, H, W), "dsnt": (N, 3, H, W), "cls": (N, len(cls_names))}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._registry import HEATMAP_PRIOR_BIAS, register_model
from .mobilenet import IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD, MobileNetUNet

__all__ = ["DENSE_HEADS", "MultiTaskNet", "multitask_net"]

#: Dense heads in output order, with the per-head model kind their logits follow.
DENSE_HEADS: dict[str, str] = {"seg": "segmentation", "heatmap": "heatmap", "dsnt": "dsnt"}


def _dense_head(features: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(features, features, 3, padding=1, bias=False),
        nn.BatchNorm2d(features),
        nn.ReLU(inplace=True),
        nn.Conv2d(features, out_channels, 1),
    )


class MultiTaskNet(MobileNetUNet):
    """Shared MobileNetV2 U-Net with segmentation, heatmap, DSNT and classification heads.

    Parameters
    ----------
    in_channels : int
    features : int
        Decoder width at full resolution (as :class:`MobileNetUNet`).
    cls_names : sequence of str
        Names of the classification logits (default ``("mirrored",)``).
    imagenet_norm : bool
        Normalise inputs with ImageNet gray statistics inside the network (for ImageNet encoder weights).
    img_size : int, optional
        Fixed input size for checks (as :class:`MobileNetUNet`).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        features: int = 16,
        cls_names: Sequence[str] = ("mirrored",),
        imagenet_norm: bool = True,
        img_size: int | Sequence[int] | None = None,
        upsample: str = "transpose",
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_channels=in_channels, out_channels=3, features=features, kind="multitask",
                         upsample=upsample, img_size=img_size, imagenet_norm=imagenet_norm)  # fmt: skip
        self.cls_names = tuple(str(c) for c in cls_names)
        if not self.cls_names:
            raise ValueError("cls_names must name at least one classification output")
        f = self.decoder.out_channels
        self.head = nn.ModuleDict({name: _dense_head(f, 3) for name in DENSE_HEADS})
        with torch.no_grad():
            self.head["heatmap"][-1].bias.fill_(HEATMAP_PRIOR_BIAS)
        self.cls_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.encoder.channels[-1], len(self.cls_names)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Raw logits of every head (see the module docstring)."""
        self.check_input(x)
        if self.imagenet_norm:
            x = (x - IMAGENET_GRAY_MEAN) / IMAGENET_GRAY_STD
        feats = self.encoder(x)
        dense = self.decoder(feats[-1], [*feats[-2::-1], None])
        out = {name: head(dense) for name, head in self.head.items()}
        out["cls"] = self.cls_head(feats[-1].mean(dim=(2, 3)))
        return out


@register_model("multitask_net")
def multitask_net(**kwargs) -> MultiTaskNet:
    """Multi-task MobileNetV2 U-Net; keyword arguments as :class:`MultiTaskNet`."""
    return MultiTaskNet(**kwargs)
