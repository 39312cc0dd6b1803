"""Building blocks shared by the U-Net family: conv block, encoder, decoder, transformer block.

Every U-Net in partus is ``encoder -> bottleneck -> decoder -> 1x1 head``; the families differ only in
the bottleneck (identity, transformer) and in the encoder (plain conv stages, MobileNetV2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

import torch
from torch import nn

from ..conventions import parse_enum

__all__ = ["ConvBlock", "TransformerBlock", "UNetDecoder", "UNetEncoder", "UpBlock", "Upsample"]


class Upsample(StrEnum):
    """How a decoder stage doubles the resolution.

    ``transpose``: a learned 2x2 transposed convolution (papers 2 and 3); ``bilinear``: fixed bilinear
    interpolation followed by the stage's convolutions.
    """

    TRANSPOSE = "transpose"
    BILINEAR = "bilinear"


class ConvBlock(nn.Sequential):
    """Two ``3x3 conv -> BatchNorm -> ReLU`` layers (the U-Net "double conv").

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out; the spatial size is kept.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNetEncoder(nn.Module):
    """Plain U-Net encoder: a full-resolution :class:`ConvBlock`, then ``levels`` x (max-pool + ConvBlock).

    Parameters
    ----------
    in_channels : int
        Image channels.
    features : int
        Width of the first level; level ``i`` has ``features * 2**i`` channels.
    levels : int
        Number of 2x down-samplings; the input size must be a multiple of ``2**levels``.

    Attributes
    ----------
    channels : tuple of int
        Channels of the returned maps, shallow to deep (``levels + 1`` entries).
    """

    def __init__(self, in_channels: int, features: int, levels: int = 4) -> None:
        super().__init__()
        self.channels = tuple(features * 2**i for i in range(levels + 1))
        self.stem = ConvBlock(in_channels, features)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), ConvBlock(self.channels[i], self.channels[i + 1])) for i in range(levels)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the maps of every level: ``(N, channels[i], H / 2**i, W / 2**i)`` for ``i = 0..levels``."""
        feats = [self.stem(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats


class UpBlock(nn.Module):
    """One decoder stage: 2x up-sampling, concatenation with a skip map (if any), :class:`ConvBlock`.

    Parameters
    ----------
    in_channels : int
        Channels of the deeper map.
    skip_channels : int
        Channels of the skip map at the doubled resolution; 0 for a stage without skip.
    out_channels : int
        Channels out.
    upsample : Upsample or str
        ``"transpose"`` or ``"bilinear"``.
    """

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, upsample: Upsample | str = "transpose"
    ) -> None:
        super().__init__()
        mode = parse_enum(Upsample, upsample, "upsample")
        if mode == Upsample.TRANSPOSE:
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
            conv_in = out_channels + skip_channels
        else:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            conv_in = in_channels + skip_channels
        self.conv = ConvBlock(conv_in, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, in, h, w)`` and optional skip ``(N, skip, 2h, 2w)`` -> ``(N, out, 2h, 2w)``."""
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class UNetDecoder(nn.Module):
    """A cascade of :class:`UpBlock` stages, deep to shallow.

    Parameters
    ----------
    in_channels : int
        Channels of the bottleneck map.
    skip_channels : sequence of int
        Skip channels per stage, deep to shallow (0 = no skip for that stage).
    channels : sequence of int
        Output channels per stage, same length as ``skip_channels``. Fewer stages than encoder levels
        stop the decoder early, at a coarser output stride.
    upsample : Upsample or str
        ``"transpose"`` or ``"bilinear"``.

    Attributes
    ----------
    out_channels : int
        Channels of the final map.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: Sequence[int],
        channels: Sequence[int],
        upsample: Upsample | str = "transpose",
    ) -> None:
        super().__init__()
        if len(skip_channels) != len(channels):
            raise ValueError(f"skip_channels and channels must have the same length, got {skip_channels}, {channels}")
        stages, prev = [], in_channels
        for skip, out in zip(skip_channels, channels, strict=True):
            stages.append(UpBlock(prev, skip, out, upsample))
            prev = out
        self.stages = nn.ModuleList(stages)
        self.out_channels = prev

    @classmethod
    def for_encoder(
        cls, encoder_channels: Sequence[int], output_stride: int, upsample: Upsample | str = "transpose"
    ) -> UNetDecoder:
        """Symmetric decoder for a :class:`UNetEncoder` with ``encoder_channels`` (shallow to deep).

        It has ``levels - log2(output_stride)`` stages, each mirroring one encoder level.
        """
        n_stages = len(encoder_channels) - 1 - int(math.log2(output_stride))
        mirrored = list(encoder_channels[-2::-1])[:n_stages]
        return cls(encoder_channels[-1], mirrored, mirrored, upsample)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Decode ``x`` with ``skips`` (deep to shallow; extra entries beyond the stage count are ignored)."""
        for stage, skip in zip(self.stages, skips, strict=False):
            x = stage(x, skip)
        return x


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block: ``x + MHSA(LN(x))``, then ``x + MLP(LN(x))``.

    Written with plain matmuls so eager, training and ONNX export run the same arithmetic (no fused
    fast path, no einops).

    Parameters
    ----------
    dim : int
        Token width; must be divisible by ``num_heads``.
    num_heads : int
        Attention heads.
    mlp_ratio : float
        Hidden width of the MLP relative to ``dim``.
    dropout : float
        Dropout on attention weights and on both residual branches.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got {dim} and {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention on ``(N, L, dim)`` tokens."""
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.attn_drop(torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(n, length, dim)
        return self.drop(self.proj(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, L, dim)`` tokens -> ``(N, L, dim)``."""
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))
