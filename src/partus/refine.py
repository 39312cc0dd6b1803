"""A second, local look at the pubic symphysis: refine the AoP vertex from a crop at twice the resolution.

The AoP error is carried by the symphysis endpoints, PS1 (the vertex) most (benchmarks/ACCURACY.md, "Where
the AoP error comes from"). A refiner is a small DSNT U-Net that sees a ``crop x crop`` window of the scan
resized to ``work x work`` pixels (as the networks' input is: :func:`partus.preprocess.resize_image`),
centred on the first estimate of the symphysis midpoint (``centre: midpoint``), on each refined landmark's
first estimate (``landmark``, one window each) or on the centre of the three landmarks' bounding box
(``box``), and predicts PS1 and PS2 inside it (and FH1 with ``box``); the landmarks named in its metadata
(``refines``) replace the first estimate, or are averaged with it by their ``blend`` weight. The
probability mass around each map's peak is its confidence (:meth:`Refiner.refine`; a verdict floor of its
own, ``QualityLimits.min_refiner_mass``, is off by default).

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

from .decode import decode_heatmaps, peak_mass, to_grid_coords, to_image_coords
from .preprocess import resize_image

__all__ = ["SUFFIX", "Refiner", "box_centre", "crop_window", "cut", "map_points", "refiner_path", "windows"]

#: File name ending of an exported refiner, beside its network's ``.onnx``.
SUFFIX = ".refiner.onnx"


def refiner_path(model: str | os.PathLike) -> Path:
    """Where the refiner of the exported network ``model`` (``NAME.onnx``) lives: ``NAME.refiner.onnx``."""
    p = Path(model)
    return p.with_name(p.name.removesuffix(".onnx") + SUFFIX)


def box_centre(points) -> np.ndarray:
    """The centre of the landmarks' bounding box ``(2,)``: where a ``box`` refiner's window sits."""
    p = np.asarray(points, float)
    return (p.max(0) + p.min(0)) / 2


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


def windows(
    grays: list[np.ndarray],
    points: list[np.ndarray],
    work: int,
    crop: int,
    centre: str,
    refines: list[int],
    n_points: int,
) -> tuple[list[tuple], list[np.ndarray]]:
    """The windows a refiner reads: ``jobs`` (image index, landmarks taken from the window, maps read, the
    window's 2 x 3 map from the scan at ``work`` pixels) and the ``crop x crop`` uint8 ``crops``, one per
    window; images whose first ``n_points`` landmarks are not all finite get none."""
    jobs, crops = [], []
    for i, (g, p) in enumerate(zip(grays, points, strict=True)):
        if not np.isfinite(np.asarray(p, float)[:n_points]).all():
            continue
        scan = resize_image(g, work)
        first = to_grid_coords(np.asarray(p, float), g.shape, (work,) * 2)
        if centre == "landmark":
            centred = [(first[j], [j], [j]) for j in refines]
        else:
            mid = box_centre(first) if centre == "box" else first[:2].mean(0)
            centred = [(mid, list(refines), list(range(n_points)))]
        for c, take, read in centred:
            m = crop_window(c, crop)
            jobs.append((i, take, read, m))
            crops.append(cut(scan, m, crop))
    return jobs, crops


class Refiner:
    """An exported refiner on ONNX Runtime.

    Its metadata gives ``work`` (the scan's working size), ``crop`` (the window), ``output_stride``,
    ``refines`` (landmark indices it refines, e.g. ``[0]`` for PS1), ``blend`` (each one's share of the result,
    1 replacing the first estimate: the default of refiners exported before it existed) and ``centre``
    (``midpoint``, the default of refiners exported before it existed, ``landmark`` or ``box``).
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
        if self.centre not in ("midpoint", "landmark", "box"):
            raise InputError(self.path, f"unknown window centre {self.centre!r}")
        self.n_points = int(self.meta["model_kwargs"]["out_channels"])  # its maps: PS1, PS2 (and FH1 with box)
        self.blend = [float(b) for b in self.meta.get("blend") or [1.0] * len(self.refines)]  # refined share
        if not self.refines or not set(self.refines) <= set(range(self.n_points)):
            raise InputError(self.path, f"refines {self.refines} must name landmarks its {self.centre!r} window holds")
        if len(self.blend) != len(self.refines) or not all(0 < b <= 1 for b in self.blend):
            raise InputError(self.path, f"blend {self.blend} must give a share in (0, 1] per refined landmark")

    def __call__(self, grays: list[np.ndarray], points: list[np.ndarray]) -> list[np.ndarray]:
        """Each image's landmarks ``(3, 2)`` (image pixels), the refined ones replaced (or blended); NaN points pass."""
        return self.refine(grays, points)[0]

    def refine(self, grays: list[np.ndarray], points: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The refined landmarks (as calling the refiner gives) and each image's confidence ``(3,)`` in PS1,
        PS2, FH1: the probability mass within 2 grid pixels of the peak of each map the refiner read (as a
        DSNT head's; a ``midpoint`` window reads PS1 and PS2, a ``box`` window all three, a ``landmark``
        window its own point's), NaN for the others and for images it did not refine."""
        from .members import activate

        out = [np.array(p, float) for p in points]
        conf = [np.full(3, np.nan) for _ in out]
        jobs, crops = windows(grays, out, self.work, self.crop, self.centre, self.refines, self.n_points)
        if not jobs:
            return out, conf
        x = (np.stack(crops).astype(np.float32) / np.float32(255.0))[:, None]
        maps = activate(self.session.run(None, {"image": x})[0].astype(np.float32), "dsnt")
        share = dict(zip(self.refines, self.blend, strict=True))
        for (i, take, read, m), mp in zip(jobs, maps, strict=True):
            w = np.array([share[j] for j in take])[:, None]
            out[i][take] = w * self.locate(mp[take], m, grays[i].shape) + (1 - w) * out[i][take]
            conf[i][read] = peak_mass(mp[read])
        return out, conf

    def locate(self, maps: np.ndarray, m: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Points ``(K, 2)`` in the pixels of a scan of ``shape`` from activated maps ``(K, h, w)`` of the
        window ``m`` (scan at the working size -> crop pixels)."""
        xy, _ = decode_heatmaps(maps, method="soft_argmax", window=0)
        in_work = map_points(cv2.invertAffineTransform(m), to_image_coords(xy, self.grid, (self.crop,) * 2))
        return to_image_coords(in_work, (self.work,) * 2, shape[:2])
