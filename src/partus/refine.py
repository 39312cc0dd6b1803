"""A second, local look at the pubic symphysis: refine the AoP vertex from a crop at twice the resolution.

The AoP error is carried by the symphysis endpoints, PS1 (the vertex) most (benchmarks/ACCURACY.md, "Where
the AoP error comes from"). A refiner is a small DSNT U-Net that sees a ``crop x crop`` window of the scan
resized to ``work x work`` pixels (as the networks' input is: :func:`partus.preprocess.resize_image`),
centred on the first estimate of the symphysis midpoint (``centre: midpoint``) or, one window per refined
landmark, on that landmark's first estimate (``centre: landmark``), and predicts PS1 and PS2 inside it;
the landmarks named in its metadata (``refines``) replace the first estimate (with ``landmark``, each from
its own window).

An exported refiner is ``NAME.refiner.onnx`` beside its network ``NAME.onnx`` (``partus export`` writes
both); :class:`~partus.members.OnnxModel` loads it with the network, and model folders do not list it as
a member. NumPy/OpenCV/ONNX Runtime only: training lives in :mod:`partus.train.refine`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from .decode import decode_heatmaps, to_grid_coords, to_image_coords
from .preprocess import resize_image

__all__ = ["SUFFIX", "Refiner", "crop_window", "cut", "map_points", "refiner_path"]

#: File name ending of an exported refiner, beside its network's ``.onnx``.
SUFFIX = ".refiner.onnx"


def refiner_path(model: str | os.PathLike) -> Path:
    """Where the refiner of the exported network ``model`` (``NAME.onnx``) lives: ``NAME.refiner.onnx``."""
    p = Path(model)
    return p.with_name(p.name.removesuffix(".onnx") + SUFFIX)


def crop_window(centre, crop: int, scale: float = 1.0, angle_deg: float = 0.0) -> np.ndarray:
    """2 x 3 affine map from scan pixels to crop pixels: the crop's centre sits on ``centre`` (x, y), one crop
    pixel spans ``scale`` scan pixels, and the crop is turned by ``angle_deg``. Pixel centres at integers."""
    a = math.radians(angle_deg)
    to_scan = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * float(scale)
    inv = np.linalg.inv(to_scan)
    c = (crop - 1) / 2
    return np.hstack([inv, (np.array([c, c]) - inv @ np.asarray(centre, float))[:, None]])


def map_points(m: np.ndarray, points) -> np.ndarray:
    """``points`` (..., 2) through the 2 x 3 affine map ``m``."""
    return np.asarray(points, float) @ m[:, :2].T + m[:, 2]


def cut(gray: np.ndarray, m: np.ndarray, crop: int) -> np.ndarray:
    """The ``crop x crop`` window of ``gray`` that ``m`` (scan -> crop pixels) describes; black outside."""
    return cv2.warpAffine(gray, m, (crop, crop), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


class Refiner:
    """An exported refiner on ONNX Runtime.

    Its metadata gives ``work`` (the scan's working size), ``crop`` (the window), ``output_stride``,
    ``refines`` (landmark indices it replaces, e.g. ``[0]`` for PS1) and ``centre`` (``midpoint``, the
    default of refiners exported before it existed, or ``landmark``).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 0, spinning: bool = False):
        from .errors import InputError
        from .export import open_model

        self.path = Path(path)
        self.session, self.meta = open_model(self.path, threads=threads, spinning=spinning)
        if self.meta.get("kind") != "refiner":
            raise InputError(self.path, f"not a refiner (kind {self.meta.get('kind')!r})")
        self.work, self.crop = int(self.meta["work"]), int(self.meta["crop"])
        self.grid = (self.crop // int(self.meta["output_stride"]),) * 2
        self.refines = [int(i) for i in self.meta["refines"]]
        self.centre = self.meta.get("centre", "midpoint")
        if self.centre not in ("midpoint", "landmark"):
            raise InputError(self.path, f"unknown window centre {self.centre!r}")

    def __call__(self, grays: list[np.ndarray], points: list[np.ndarray]) -> list[np.ndarray]:
        """Each image's landmarks ``(3, 2)`` (image pixels) with the refined ones replaced; NaN points pass."""
        from .members import activate

        out = [np.array(p, float) for p in points]
        todo = [i for i, p in enumerate(out) if np.isfinite(p[:2]).all()]
        if not todo:
            return out
        jobs, crops = [], []  # (image, landmarks taken from the window, window), one per crop
        for i in todo:
            g = grays[i]
            work = resize_image(g, self.work)
            first = to_grid_coords(out[i][:2], g.shape, (self.work,) * 2)
            centred = [(first.mean(0), self.refines)] if self.centre == "midpoint" else \
                [(first[j], [j]) for j in self.refines]  # fmt: skip
            for centre, take in centred:
                m = crop_window(centre, self.crop)
                jobs.append((i, take, m))
                crops.append(cut(work, m, self.crop))
        x = (np.stack(crops).astype(np.float32) / np.float32(255.0))[:, None]
        maps = activate(self.session.run(None, {"image": x})[0].astype(np.float32), "dsnt")
        for (i, take, m), mp in zip(jobs, maps, strict=True):
            out[i][take] = self.locate(mp[take], m, grays[i].shape)
        return out

    def locate(self, maps: np.ndarray, m: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Points ``(K, 2)`` in the pixels of a scan of ``shape`` from activated maps ``(K, h, w)`` of the
        window ``m`` (scan at the working size -> crop pixels)."""
        xy, _ = decode_heatmaps(maps, method="soft_argmax", window=0)
        in_work = map_points(cv2.invertAffineTransform(m), to_image_coords(xy, self.grid, (self.crop,) * 2))
        return to_image_coords(in_work, (self.work,) * 2, shape[:2])
