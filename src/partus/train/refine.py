"""Train and export a symphysis refiner (:mod:`partus.refine`): a small DSNT U-Net on crops around PS.

Each training step cuts one window per scan from the scan at the working size, centred on the annotated
symphysis midpoint (``refine.centre: midpoint``) or on one of the refined endpoints (``landmark``) moved by
N(0, ``jitter``) px, at a random scale and turn, with the photometric augmentation of the main training;
the targets are PS1 and PS2 in the window (with ``landmark``, only the centred endpoint's map is
supervised). The loss is the DSNT paper's: Euclidean distance plus a Jensen-Shannon regulariser (paper 4).

``partus train`` trains one after its network when ``refine.epochs > 0`` (on the same training scans) and
keeps it as ``refiner.pt`` in the run folder; ``partus export`` writes it beside the network.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..config import AugmentConfig, RefineConfig
from ..data.records import Record
from ..decode import to_grid_coords
from ..preprocess import resize_image
from ..refine import box_centre, crop_window, cut, map_points

__all__ = [
    "build_refiner",
    "export_refiner",
    "load_refiner",
    "refiner_done",
    "refiner_key",
    "run_refiner",
    "save_refiner",
    "train_refiner",
]

FILE = "refiner.pt"


def run_refiner(checkpoint: str | Path) -> Path | None:
    """The refiner trained with the network of a run's ``checkpoint`` (``RUN/checkpoints/X.ckpt``, or
    ``RUN/finetuneK/checkpoints/X.ckpt`` of an error-weighted round), or None."""
    ckpt = Path(checkpoint)
    if ckpt.parent.name != "checkpoints":
        return None
    run = ckpt.parent.parent
    runs = (run, run.parent) if run.name.startswith("finetune") else (run,)
    return next((d / FILE for d in runs if (d / FILE).is_file()), None)


def build_refiner(rc: RefineConfig) -> torch.nn.Module:
    from ..models import create_model

    return create_model("dsnt_unet", out_channels=rc.n_points, features=rc.features, output_stride=rc.output_stride)


def _photometric(aug: AugmentConfig):
    from ..data.augment import build_augment

    return build_augment(aug.model_copy(update={"p_affine": 0.0}))


def train_refiner(
    records: list[Record],
    rc: RefineConfig,
    aug: AugmentConfig,
    *,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> torch.nn.Module:
    """A refiner trained on ``records`` (their annotated PS1, PS2); returned in eval mode."""
    from ..models.dsnt import dsnt, js_regulariser, spatial_softmax

    if not records:
        raise ValueError("no training scans for the refiner")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    work = (rc.work, rc.work)
    n = rc.n_points
    scans = [(resize_image(r.image, rc.work), to_grid_coords(r.points[:n], r.image.shape, work)) for r in records]
    grid = (rc.crop // rc.output_stride,) * 2
    net = build_refiner(rc)
    opt = torch.optim.AdamW(net.parameters(), lr=rc.lr, weight_decay=1e-4)
    steps = rc.epochs * math.ceil(len(scans) / rc.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, rc.lr, total_steps=steps)
    net.train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Got processor for keypoints")  # photometric transforms only
        photo = _photometric(aug)
        for epoch in range(rc.epochs):
            total, t0 = 0.0, time.perf_counter()
            order = rng.permutation(len(scans))
            for b in range(0, len(order), rc.batch_size):
                xs, ys, ws = [], [], []
                for i in order[b : b + rc.batch_size]:
                    gray, pts = scans[i]
                    w = np.ones(n, np.float32)  # which maps this window supervises
                    if rc.centre == "midpoint":
                        centre = pts.mean(0) + rng.normal(0.0, rc.jitter, 2)
                    elif rc.centre == "box":
                        centre = box_centre(pts) + rng.normal(0.0, rc.jitter, 2)
                    else:  # on one refined endpoint; the other may lie outside the window: not supervised
                        j = rc.refines[int(rng.integers(len(rc.refines)))]
                        centre = pts[j] + rng.normal(0.0, rc.jitter, 2)
                        w[:] = 0.0
                        w[j] = 1.0
                    ws.append(w)
                    m = crop_window(centre, rc.crop, rng.uniform(1 - rc.scale, 1 + rc.scale),
                                    rng.uniform(-rc.rotate_deg, rc.rotate_deg))  # fmt: skip
                    photo.set_random_seed(int(rng.integers(1 << 31)))
                    xs.append(photo(image=cut(gray, m, rc.crop), keypoints=np.zeros((0, 2), np.float32))["image"])
                    target = to_grid_coords(map_points(m, pts), (rc.crop, rc.crop), grid)
                    target[w == 0] = (grid[0] - 1) / 2  # an unsupervised map (weight 0): a finite, in-window target
                    ys.append(target)
                x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255.0)[:, None]
                y = torch.from_numpy(np.stack(ys).astype(np.float32))
                w = torch.from_numpy(np.stack(ws))
                probs = spatial_softmax(net(x))
                dist, js = (dsnt(probs) - y).norm(dim=-1), js_regulariser(probs, y, rc.sigma)
                if rc.centre != "landmark":  # every map supervised (written so, earlier refiners reproduce exactly)
                    loss = dist.mean() + js.mean()
                else:
                    loss = ((dist + js) * w).sum() / w.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(xs)
            if log is not None:
                log(f"refiner epoch {epoch + 1}/{rc.epochs}: loss {total / len(order):.3f} "
                    f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    return net.eval()


def refiner_key(records: list[Record], cfg) -> str:
    """What a refiner was trained on: the scans, the seed and the augmentation (a rerun that changes any of
    them trains a new one)."""
    import hashlib
    import json

    aug = cfg.data.augment.model_dump(mode="json", exclude={"p_turn", "turn_deg"})  # the refiner does not turn
    blob = json.dumps([sorted(r.name for r in records), cfg.train.seed, aug])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_refiner(net: torch.nn.Module, rc: RefineConfig, path: str | Path, config_name: str, key: str = "") -> None:
    from ..io import atomic_path

    with atomic_path(Path(path)) as tmp:
        torch.save({"state_dict": net.state_dict(), "refine": rc.model_dump(), "config": config_name, "key": key}, tmp)


def _trained_as(rc: RefineConfig) -> dict:
    """The settings that decide a refiner's weights: not ``blend``, nor ``refines`` for a window that
    supervises every map (``midpoint``, ``box``); those only say how its points are used."""
    return rc.model_dump(exclude={"blend"} if rc.centre == "landmark" else {"blend", "refines"})


def refiner_done(path: Path, rc: RefineConfig, key: str) -> bool:
    """Whether ``path`` holds a refiner trained as ``rc`` says on what ``key`` names (a rerun keeps it). Its
    settings that only say how its points are used (:func:`_trained_as`) are then rewritten to ``rc``'s."""
    if not path.is_file():
        return False
    from pydantic import ValidationError

    from ..io import atomic_path

    blob = torch.load(path, map_location="cpu", weights_only=True)
    try:
        stored = RefineConfig(**blob["refine"])  # settings added since it was saved take their defaults
    except ValidationError:  # a setting since removed or changed: train again
        return False
    if _trained_as(stored) != _trained_as(rc) or blob.get("key") != key:
        return False
    if stored != rc:
        with atomic_path(Path(path)) as tmp:
            torch.save({**blob, "refine": rc.model_dump()}, tmp)
    return True


def load_refiner(path: str | Path) -> tuple[torch.nn.Module, RefineConfig, str]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    rc = RefineConfig(**blob["refine"])
    net = build_refiner(rc)
    net.load_state_dict(blob["state_dict"])
    return net.eval(), rc, blob["config"]


def export_refiner(path: str | Path, out: str | Path) -> dict:
    """Export a saved refiner (``refiner.pt``) to ONNX (parity-checked like the networks)."""
    from .. import __version__
    from ..export import write_onnx

    net, rc, config = load_refiner(path)
    meta = {
        "format": 1, "partus_version": __version__, "config": config, "kind": "refiner",
        "model": "dsnt_unet", "model_kwargs": {"out_channels": rc.n_points, "features": rc.features},
        "output_stride": rc.output_stride, "work": rc.work, "crop": rc.crop, "refines": list(rc.refines),
        "centre": rc.centre, "blend": list(rc.blend) if rc.blend is not None else [1.0] * len(rc.refines),
        "input_scale": "uint8 / 255, one channel",
        "coordinates": "(x, y) pixels of the crop, origin top-left pixel centre; grid and crop edges align",
    }  # fmt: skip
    return write_onnx(net, ["output"], rc.crop, net.required_divisor, meta, out)
