"""Training throughput per model family on this CPU: images/s for forward + loss + backward + AdamW step.

Usage: python benchmarks/train_throughput.py [--size 128] [--batch 8] [--steps 6]
Synthetic input (throughput does not depend on pixel values). Prints one line per family.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from partus.losses import dsnt_loss, heatmap_mse, segmentation_loss
from partus.models import create_model

FAMILIES = {
    "heatmap_unet (stride 1)": ("heatmap_unet", {"features": 16}),
    "heatmap_unet (stride 2)": ("heatmap_unet", {"features": 16, "output_stride": 2}),
    "transunet": ("transunet", {"features": 16, "depth": 4}),
    "dsnt_unet": ("dsnt_unet", {"features": 16}),
    "seg_unet": ("seg_unet", {"features": 16}),
    "transunet_seg": ("transunet_seg", {"features": 16, "depth": 4}),
}


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict) -> None:
    out = model(batch["x"])
    if model.kind == "segmentation":
        loss = segmentation_loss(out, batch["mask"]).mean()
    elif model.kind == "dsnt":
        loss = dsnt_loss(out, batch["xy"], sigma=2.0).mean()
    else:
        loss = heatmap_mse(out, batch["hm"]).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    s, b = args.size, args.batch
    print(f"training throughput, {s}x{s} input, batch {b}, {torch.get_num_threads()} threads, channels_last")
    for label, (name, kw) in FAMILIES.items():
        if "transunet" in name:
            kw = {**kw, "img_size": s}
        model = create_model(name, **kw).to(memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        x = torch.rand(b, 1, s, s).contiguous(memory_format=torch.channels_last)
        g = s // model.output_stride
        hm = torch.rand(b, 3, g, g)
        xy = torch.rand(b, 3, 2) * (g - 1)
        mask = torch.randint(0, 3, (b, s, s))

        batch = {"x": x, "hm": hm, "xy": xy, "mask": mask}
        _step(model, opt, batch)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.steps):
            _step(model, opt, batch)
        dt = (time.perf_counter() - t0) / (args.steps * b)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{label:26s} {params:5.2f} M params  {1e3 * dt:7.1f} ms/image  {1 / dt:7.1f} images/s")


if __name__ == "__main__":
    main()
