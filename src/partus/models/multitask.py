"""One multi-task network (paper 5's shape): a shared MobileNetV2 encoder and U-Net decoder with heads for
PS/FH segmentation, landmark heatmaps, DSNT coordinate maps, and image-level classification.

One pass gives masks (hence HSD and the official landmark rule), two landmark estimates and the
image-level logits; inference fuses the three landmark estimates (``partus.decode.FUSION``, the median).
The classification head reads the encoder's deepest map (global average pool -> linear). Its outputs are
named by ``cls_names``: ``mirrored`` (is the display left-right mirrored?) is the first. A
``standard_plane`` output (the video issue) comes from its own small head, :class:`PlaneHead` (with
``plane_hidden`` > 0): an MLP on the pooled deepest map *and* pooled statistics of the dense heads (how
sure the segmentation is that a symphysis and a head are there, how peaked the landmark maps are),
:func:`plane_features`.

``forward`` returns a dict of raw logits::

    {"seg": (N, 3, H, W), "heatmap": (N, 3, H, W), "dsnt": (N, 3, H, W), "cls": (N, len(cls_names))}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._registry import HEATMAP_PRIOR_BIAS, register_model
from .mobilenet import IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD, MobileNetUNet

__all__ = ["DENSE_HEADS", "MultiTaskNet", "PlaneHead", "multitask_net", "plane_features"]

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
    plane_hidden : int
        Width of the :class:`PlaneHead` MLP that gives the last ``cls`` output, ``standard_plane`` (0: none).
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
        plane_hidden: int = 0,
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
        self.plane_hidden = int(plane_hidden)
        plane = self.plane_hidden > 0
        if plane and self.cls_names[-1] != "standard_plane":
            raise ValueError("plane_hidden needs 'standard_plane' as the last of cls_names")
        n_linear = len(self.cls_names) - plane
        if n_linear < 1:
            raise ValueError("cls_names must name a linear classification output besides standard_plane")
        self.cls_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.encoder.channels[-1], n_linear))
        self.plane_head = PlaneHead(self.encoder.channels[-1] + N_STATS, self.plane_hidden) if plane else None

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The pooled deepest encoder map ``(N, C)`` and the dense heads' logits."""
        self.check_input(x)
        if self.imagenet_norm:
            x = (x - IMAGENET_GRAY_MEAN) / IMAGENET_GRAY_STD
        feats = self.encoder(x)
        dense = self.decoder(feats[-1], [*feats[-2::-1], None])
        return feats[-1].mean(dim=(2, 3)), {name: head(dense) for name, head in self.head.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Raw logits of every head (see the module docstring)."""
        pooled, out = self.trunk(x)
        out["cls"] = self.cls_head(pooled)
        if self.plane_head is not None:
            out["cls"] = torch.cat([out["cls"], self.plane_head(plane_features(pooled, out))], dim=1)
        return out


#: Dense-head statistics in :func:`plane_features` (and their logarithms): segmentation max, mean and
#: (smoothly counted) share above 0.5 for PS and FH; heatmap and DSNT peak per landmark.
N_STATS = 24


def plane_features(pooled: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
    """The standard-plane head's input: the pooled deepest encoder map ``(N, C)`` and statistics of the
    dense heads' logits ``out`` (see :data:`N_STATS`), ``(N, C + N_STATS)``."""
    seg = out["seg"].softmax(1)[:, 1:]
    peaks = [out["heatmap"].sigmoid().amax(dim=(2, 3)), out["dsnt"].flatten(2).softmax(-1).amax(-1)]
    area = torch.sigmoid(20.0 * (seg - 0.5)).mean(dim=(2, 3))  # share above 0.5, smooth: no flips at rounding
    stats = torch.cat([seg.amax(dim=(2, 3)), seg.mean(dim=(2, 3)), area, *peaks], 1)
    return torch.cat([pooled, stats, torch.log(stats + 1e-4)], 1)


class PlaneHead(nn.Module):
    """MLP giving the ``standard_plane`` logit from :func:`plane_features` (standardised by stored
    statistics of its training features)."""

    def __init__(self, in_features: int, hidden: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp((x - self.mean) / self.std)


@register_model("multitask_net")
def multitask_net(**kwargs) -> MultiTaskNet:
    """Multi-task MobileNetV2 U-Net; keyword arguments as :class:`MultiTaskNet`."""
    return MultiTaskNet(**kwargs)
