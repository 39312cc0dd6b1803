"""The IUGC 2025 organisers' baseline network, timed the way they run it (used by ``speed.py``).

    python benchmarks/baseline_unet.py [--repeat 3] [--warmup 2] [--size 512]

A plain U-Net (Ronneberger et al. 2015): 4 down / 4 up levels, two ``3x3 conv + BN + ReLU`` per level,
64 channels doubling to 1024 at the bottleneck, 2x2 transposed-convolution up-sampling, 1x1 head with
3 heatmaps; input ``1 x size x size``; random weights (speed does not depend on them). Timing: torch
eager on the CPU with torch's default thread count, batch 1, ``torch.inference_mode()``, ``--warmup``
untimed passes, then the mean of ``--repeat`` passes. Prints one JSON line:
``{"ms": ..., "params": ..., "threads": ..., "size": ..., "repeat": ...}``.

Written in plain torch on purpose (no torchvision / timm / segmentation_models_pytorch, no partus model
code), so the reference stays fixed whatever partus's own networks become.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two ``3x3 conv -> BatchNorm -> ReLU`` layers."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BaselineUNet(nn.Module):
    """Plain U-Net, channels ``base * (1, 2, 4, 8, 16)`` = 64 ... 1024, transposed-conv decoder, 1x1 head."""

    def __init__(self, in_channels: int = 1, out_channels: int = 3, base: int = 64, levels: int = 4) -> None:
        super().__init__()
        ch = [base * 2**i for i in range(levels + 1)]
        self.stem = double_conv(in_channels, ch[0])
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), double_conv(ch[i], ch[i + 1])) for i in range(levels))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in reversed(range(levels)))
        self.convs = nn.ModuleList(double_conv(2 * ch[i], ch[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(ch[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up, conv in zip(self.ups, self.convs, strict=True):
            x = conv(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def time_baseline(repeat: int = 3, warmup: int = 2, size: int = 512) -> dict:
    """Mean ms of ``repeat`` batch-1 eager CPU passes after ``warmup`` untimed ones."""
    torch.manual_seed(0)
    net = BaselineUNet().eval()
    x = torch.rand(1, 1, size, size)
    with torch.inference_mode():
        for _ in range(warmup):
            out = net(x)
        ts = []
        for _ in range(repeat):
            t = time.perf_counter()
            out = net(x)
            ts.append(time.perf_counter() - t)
    assert out.shape == (1, 3, size, size), out.shape
    return {
        "ms": 1e3 * sum(ts) / len(ts),
        "params": sum(p.numel() for p in net.parameters()),
        "threads": torch.get_num_threads(),
        "size": size,
        "repeat": repeat,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes (mean is reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed passes first")
    ap.add_argument("--size", type=int, default=512, help="input side in pixels (multiple of 16)")
    args = ap.parse_args()
    if args.repeat < 1 or args.warmup < 0 or args.size < 16 or args.size % 16:
        ap.error("need --repeat >= 1, --warmup >= 0 and --size a positive multiple of 16")
    print(json.dumps(time_baseline(args.repeat, args.warmup, args.size)))


if __name__ == "__main__":
    main()
