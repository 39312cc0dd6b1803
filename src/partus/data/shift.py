"""A fixed, seeded acquisition-shift suite: the changes a new scanner, preset or operator brings.

Each shift maps a scan (uint8 ``H x W``), its landmarks ``(3, 2)`` and optionally its PS/FH mask to the
scan as another acquisition would show it. Geometric shifts move landmarks and masks with the image
(the landmarks keep their anatomical identity; AoP is invariant under these similarity maps), so the
ground truth of a shifted scan is exact, not re-annotated. Every shift is deterministic given the
record's index (seeded per image), so two evaluations of two models see identical images.

The suite (names are stable: reports and the model card key on them):

``gain_low`` / ``gain_high``
    Overall gain x0.6 / x1.5 with a contrast change (time-gain and dynamic-range presets).
``gamma``
    Gray-map curve: gamma 0.6 on half the scans and 1.7 on the others (seeded).
``speckle``
    Strong multiplicative speckle (Rayleigh-like, relative SD 0.35) at a 2-px grain.
``blur``
    Gaussian blur, sigma 1.6 px (a lower-frequency probe or a smoothing preset).
``zoom_in`` / ``zoom_out``
    Depth change: scaled x1.2 / x0.8 about the probe (top centre), cropped or padded to the same size.
``shift_fov``
    Field of view moved sideways by 12 % of the width (seeded direction), edges padded black.
``rotate``
    Probe tilt: rotation by +/-12 deg (seeded sign) about the image centre.
``fan``
    A narrower sector (a changed fan angle), outside it a gray 24 background with a UI bar, as another
    scanner draws its screen.

:func:`mirror` is kept apart: it is the left-right flip of a scanner's display preset, with landmarks
kept anatomical (PS1 stays the inferior symphysis end), evaluated as its own column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["SHIFTS", "ShiftedScan", "apply_shift", "mirror", "shift_names"]


@dataclass(frozen=True)
class ShiftedScan:
    """A shifted scan: ``image`` uint8, ``points`` (3, 2) anatomical landmarks, ``mask`` or None, and
    ``valid`` False when a landmark left the image (such scans are left out of that shift's figures)."""

    image: np.ndarray
    points: np.ndarray
    mask: np.ndarray | None
    valid: bool


Shift = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", np.random.Generator], tuple]


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _photometric(fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> Shift:
    def shift(img, pts, mask, rng):
        return fn(img.astype(np.float32), rng), pts, mask

    return shift


def _warp(img: np.ndarray, pts: np.ndarray, mask: np.ndarray | None, m: np.ndarray) -> tuple:
    """Affine ``m`` (2 x 3, pixel centres at integer coordinates) applied to image, points and mask."""
    h, w = img.shape
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    p = np.asarray(pts, float) @ m[:, :2].T + m[:, 2]
    msk = None
    if mask is not None:
        msk = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, p, msk


def _scale_about_probe(factor: float) -> Shift:
    def shift(img, pts, mask, rng):
        h, w = img.shape
        cx = (w - 1) / 2
        m = np.array([[factor, 0, cx * (1 - factor)], [0, factor, 0]], np.float64)
        return _warp(img, pts, mask, m)

    return shift


def _shift_fov(img, pts, mask, rng):
    w = img.shape[1]
    dx = 0.12 * w * (1 if rng.random() < 0.5 else -1)
    return _warp(img, pts, mask, np.array([[1, 0, dx], [0, 1, 0]], np.float64))


def _rotate(img, pts, mask, rng):
    h, w = img.shape
    angle = 12.0 * (1 if rng.random() < 0.5 else -1)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    return _warp(img, pts, mask, m)


def _fan(img, pts, mask, rng):
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    apex = ((w - 1) / 2, -0.15 * h)
    ang = np.degrees(np.arctan2(xx - apex[0], yy - apex[1]))  # 0 deg straight down
    inside = np.abs(ang) <= 38.0
    out = img.astype(np.float32) * inside + 24.0 * ~inside
    out[: max(2, h // 40)] = 150.0  # a UI bar along the top edge
    return out, pts, mask


def _speckle(x, rng):
    h, w = x.shape
    grain = rng.rayleigh(1.0, size=(h // 2 + 1, w // 2 + 1)).astype(np.float32)
    grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)[:h, :w]
    grain = 1.0 + 0.35 * (grain - grain.mean()) / max(float(grain.std()), 1e-6)
    return x * np.clip(grain, 0.0, None)


def _gamma(x, rng):
    g = 0.6 if rng.random() < 0.5 else 1.7
    return 255.0 * (x / 255.0) ** g


#: name -> shift function ``(image, points, mask, rng) -> (image, points, mask)``; order is the report's.
SHIFTS: dict[str, Shift] = {
    "gain_low": _photometric(lambda x, rng: 0.6 * x),
    "gain_high": _photometric(lambda x, rng: 1.5 * (x - 20.0) + 20.0),
    "gamma": _photometric(_gamma),
    "speckle": _photometric(_speckle),
    "blur": _photometric(lambda x, rng: cv2.GaussianBlur(x, (0, 0), 1.6)),
    "zoom_in": _scale_about_probe(1.2),
    "zoom_out": _scale_about_probe(0.8),
    "shift_fov": _shift_fov,
    "rotate": _rotate,
    "fan": _fan,
}


def shift_names() -> list[str]:
    """The suite's shift names, in report order."""
    return list(SHIFTS)


def _inside(pts: np.ndarray, shape: tuple[int, int]) -> bool:
    h, w = shape
    return bool(np.isfinite(pts).all() and (pts[:, 0] >= 0).all() and (pts[:, 0] <= w - 1).all()
                and (pts[:, 1] >= 0).all() and (pts[:, 1] <= h - 1).all())  # fmt: skip


def apply_shift(
    name: str, image: np.ndarray, points: np.ndarray, mask: np.ndarray | None = None, *, seed: int = 0, index: int = 0
) -> ShiftedScan:
    """Apply shift ``name`` to one scan; seeded by ``(seed, index, name)`` so the suite is fixed.

    Raises
    ------
    KeyError
        For an unknown shift name (the message lists the known ones).
    """
    if name not in SHIFTS:
        raise KeyError(f"unknown shift {name!r}; known: {', '.join(SHIFTS)}")
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"image must be a 2-D uint8 array, got {img.dtype} {img.shape}")
    key = [seed, index, *name.encode()]
    rng = np.random.default_rng(key)
    out, pts, msk = SHIFTS[name](img, np.asarray(points, float), mask, rng)
    pts = np.asarray(pts, float)
    return ShiftedScan(_u8(out), pts, msk, _inside(pts, img.shape))


def mirror(image: np.ndarray, points: np.ndarray, mask: np.ndarray | None = None) -> ShiftedScan:
    """The scan as a mirrored display shows it; landmarks keep their anatomical identity."""
    w = image.shape[1]
    pts = np.asarray(points, float).copy()
    pts[:, 0] = (w - 1) - pts[:, 0]
    msk = None if mask is None else np.ascontiguousarray(mask[:, ::-1])
    return ShiftedScan(np.ascontiguousarray(image[:, ::-1]), pts, msk, True)
