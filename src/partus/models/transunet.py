"""TransUNet: CNN encoder, transformer bottleneck, U-Net decoder (Chen et al., arXiv:2102.04306, 2021).

Papers 1 (segmentation) and 2 (landmark heatmaps) of ``shared/papers`` use it. Here the CNN encoder is
the plain U-Net encoder (no ResNet-50, which would need ImageNet weights we cannot download); at its
1/16 bottleneck a 1x1 patch embedding makes one token per position, a learned position embedding is
added, ``depth`` pre-norm transformer blocks mix the tokens globally, and the tokens are reshaped back
to a map for the U-Net decoder.

Input sizes: the position embedding is learned for ``img_size`` and bilinearly resized to other
(multiple-of-16) sizes, both in eager mode and in ONNX graphs exported with dynamic height/width (the
resize is always part of a traced graph, so one export serves every size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._base import DenseModel, positive_int
from ._registry import register_model
from .blocks import TransformerBlock, UNetDecoder, UNetEncoder, Upsample
from .unet import LEVELS, check_img_size

__all__ = ["TransUNet", "transunet", "transunet_seg"]


class TransUNet(DenseModel):
    """CNN encoder + transformer bottleneck (at 1/16) + U-Net decoder with skips + 1x1 head.

    Parameters
    ----------
    in_channels, out_channels, features, output_stride, upsample
        As :class:`partus.models.unet.UNet`.
    kind : ModelKind or str
        ``"heatmap"`` (default, paper 2) or ``"segmentation"`` (paper 1); ``"dsnt"`` also works.
    embed_dim : int
        Token width of the transformer.
    depth : int
        Number of transformer blocks.
    num_heads : int
        Attention heads; must divide ``embed_dim``.
    mlp_ratio : float
        MLP hidden width relative to ``embed_dim``.
    dropout : float
        Dropout inside the transformer blocks.
    img_size : int or (int, int)
        Training input size ``(height, width)``; the position embedding has ``img_size / 16`` cells per
        side and is bilinearly resized for other input sizes.

    Examples
    --------
    >>> import torch
    >>> net = TransUNet(features=8, embed_dim=32, depth=1, num_heads=2, img_size=64)
    >>> net(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 3,
        features: int = 16,
        output_stride: int = 1,
        kind: str = "heatmap",
        embed_dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        img_size: int | Sequence[int] = 256,
        upsample: Upsample | str = "transpose",
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            kind=kind,
            output_stride=output_stride,
            required_divisor=2**LEVELS,
        )
        self.features = positive_int(features, "features")
        positive_int(embed_dim, "embed_dim")
        positive_int(depth, "depth")
        positive_int(num_heads, "num_heads")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        size = check_img_size(img_size, self.required_divisor)
        if size is None:
            raise ValueError("img_size is required by TransUNet (it sizes the position embedding), got None")
        self.img_size = size
        self.encoder = UNetEncoder(in_channels, features, LEVELS)
        bottleneck = self.encoder.channels[-1]
        self.patch_embed = nn.Conv2d(bottleneck, embed_dim, 1)
        grid = (size[0] // self.required_divisor, size[1] // self.required_divisor)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *grid))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(embed_dim, num_heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.unembed = nn.Sequential(
            nn.Conv2d(embed_dim, bottleneck, 3, padding=1, bias=False),
            nn.BatchNorm2d(bottleneck),
            nn.ReLU(inplace=True),
        )
        self.decoder = UNetDecoder.for_encoder(self.encoder.channels, self.output_stride, upsample)
        self.head = nn.Conv2d(self.decoder.out_channels, out_channels, 1)

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """Position embedding ``(1, embed_dim, height, width)``, bilinearly resized from the learned grid.

        While tracing (ONNX export) the resize is always recorded, even at the learned size, so the
        exported graph accepts other sizes; at equal size the bilinear resize is the identity.
        """
        if not torch.jit.is_tracing() and (height, width) == tuple(self.pos_embed.shape[-2:]):
            return self.pos_embed
        return F.interpolate(self.pos_embed, size=(height, width), mode="bilinear", align_corners=False)

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """Transformer bottleneck: ``(N, C, h, w)`` -> ``(N, C, h, w)`` with global token mixing."""
        e = self.patch_embed(x)
        n, d, h, w = e.shape
        e = e + self.position_embedding(h, w)
        tokens = e.flatten(2).transpose(1, 2)  # (N, h*w, D)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return self.unembed(tokens.transpose(1, 2).reshape(n, d, h, w))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` -> decoder map ``(N, C, H / output_stride, W / output_stride)``."""
        feats = self.encoder(x)
        return self.decoder(self.bottleneck(feats[-1]), feats[-2::-1])


@register_model("transunet")
def transunet(**kwargs) -> TransUNet:
    """TransUNet with ``kind="heatmap"`` by default (paper 2); all keyword arguments as :class:`TransUNet`."""
    return TransUNet(**kwargs)


@register_model("transunet_seg")
def transunet_seg(*, out_channels: int = 3, kind: str = "segmentation", **kwargs) -> TransUNet:
    """TransUNet segmenter (paper 1): background / PS / FH logits at full resolution by default."""
    return TransUNet(out_channels=out_channels, kind=kind, **kwargs)
