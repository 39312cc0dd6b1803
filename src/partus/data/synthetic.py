"""Seeded synthetic transperineal-ultrasound phantoms with exact masks, landmarks and AoP.

A phantom is a fan-shaped field of view with speckled tissue, a bright elongated pubic symphysis (PS)
in the upper left and a fetal head (FH: dark interior, bright skull rim) below and to the right. Its
ground truth is derived from the rasterised mask by the official rule (``partus.geometry``), exactly as
the real datasets' ground truth is. NumPy + OpenCV only. Used by tests and smoke training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..conventions import FH, PS
from ..geometry import measure_mask
from ..measurement import Landmarks

__all__ = ["Phantom", "make_phantom", "make_phantoms"]

_MAX_TRIES = 500


@dataclass(frozen=True)
class Phantom:
    """One synthetic scan: ``image`` (H x W uint8), ``label_map`` (0/1/2), field of view ``fov`` (bool)
    and the exact ground truth."""

    image: np.ndarray
    label_map: np.ndarray
    fov: np.ndarray
    landmarks: Landmarks
    aop: float
    hsd: float
    params: dict[str, Any] = field(default_factory=dict)


def _fan(h: int, w: int, apex: tuple[float, float], half_angle: float, r0: float, r1: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - apex[0], yy - apex[1]
    r = np.hypot(dx, dy)
    ang = np.abs(np.arctan2(dx, dy))
    return (ang <= half_angle) & (r >= r0) & (r <= r1)


def _ellipse(shape: tuple[int, int], centre, axes, angle_deg: float) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
    a = (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16))))
    cv2.ellipse(m, c, a, angle_deg, 0, 360, 1, -1, cv2.LINE_8, shift=4)
    return m.astype(bool)


def _scene(rng: np.random.Generator, h: int, w: int) -> dict[str, Any]:
    s = min(h, w)
    ps_len = s * rng.uniform(0.15, 0.2)
    theta = rng.uniform(-30, 5)
    ps_c = (w * rng.uniform(0.3, 0.45), h * rng.uniform(0.14, 0.24))
    fh_axes = (s * rng.uniform(0.24, 0.32), s * rng.uniform(0.2, 0.28))
    t = math.radians(theta)
    ps1 = np.array(ps_c) + ps_len * np.array([math.cos(t), math.sin(t)])
    phi = math.radians(rng.uniform(15, 85))  # direction from PS1 to the head centre (below right)
    dist = max(fh_axes) + s * rng.uniform(0.02, 0.12)
    fh_c = tuple(ps1 + dist * np.array([math.cos(phi), math.sin(phi)]))
    return {
        "ps_centre": ps_c, "ps_axes": (ps_len, s * rng.uniform(0.025, 0.04)), "ps_angle": theta,
        "fh_centre": fh_c, "fh_axes": fh_axes, "fh_angle": rng.uniform(-30, 30),
        "fan_apex": (w / 2 + w * rng.uniform(-0.05, 0.05), -0.3 * h),
        "fan_half_angle": math.radians(rng.uniform(38, 48)),
    }  # fmt: skip


def _render(rng: np.random.Generator, lab: np.ndarray, fan: np.ndarray, p: dict, noise: float) -> np.ndarray:
    h, w = lab.shape
    s = min(h, w)
    depth = np.hypot(*np.mgrid[0:h, 0:w][::-1] - np.array(p["fan_apex"])[:, None, None]) / h
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), s / 40)
    tissue = (55 + 25 * texture / (texture.std() + 1e-6)) * np.exp(-0.35 * depth)
    head = lab == FH
    rim = head & ~cv2.erode(head.astype(np.uint8), np.ones((5, 5), np.uint8), iterations=max(1, s // 128)).astype(bool)
    img = np.where(head, 0.55 * tissue, tissue)
    img = np.where(rim, 175 + 30 * rng.random(), img)
    img = np.where(lab == PS, 185 + 35 * rng.random(), img)
    for _ in range(rng.integers(2, 6)):  # bright streaks (fascia, bowel)
        y0 = rng.uniform(0.2, 0.95) * h
        pts = np.array([[x, y0 + rng.normal(0, s / 30) + 0.1 * (x - w / 2)] for x in np.linspace(0, w, 6)], np.int32)
        streak = np.zeros((h, w), np.uint8)
        cv2.polylines(streak, [pts], False, 1, max(1, s // 100))
        img = np.where(streak.astype(bool) & ~head, img + 50, img)
    speckle = rng.gamma(2.0, 0.5, (h, w)).astype(np.float32)  # multiplicative, mean 1
    speckle = cv2.GaussianBlur(speckle, (0, 0), sigmaX=0.6, sigmaY=1.4)  # smeared along the beam
    img = img * (1 + noise * (speckle / speckle.mean() - 1))
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.7)
    return np.clip(np.where(fan, img, 0), 0, 255).astype(np.uint8)


def make_phantom(
    seed: int,
    *,
    size: int | tuple[int, int] = 256,
    mirrored: bool = False,
    aop_range: tuple[float, float] = (95.0, 160.0),
    noise: float = 1.0,
) -> Phantom:
    """One phantom, deterministic in ``seed``.

    Parameters
    ----------
    seed : int
    size : int or (height, width)
    mirrored : bool
        Flip the scene left-right (head beyond the left end of PS). The official rule then gives
        AoP < 90 deg; ``measure_mask(..., orientation="mirrored")`` gives the intended angle.
    aop_range : (low, high)
        Accepted AoP of the (unflipped) scene, degrees.
    noise : float
        Speckle strength (0 = none).

    Raises
    ------
    ValueError
        If the size is below 64 px or no scene satisfying the constraints is found.
    """
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if min(h, w) < 64:
        raise ValueError(f"size must be at least 64 px, got {(h, w)}")
    lo, hi = aop_range
    if not 0 <= lo < hi <= 180:
        raise ValueError(f"aop_range must satisfy 0 <= low < high <= 180, got {aop_range}")
    rng = np.random.default_rng(seed)
    for _ in range(_MAX_TRIES):
        p = _scene(rng, h, w)
        fan = _fan(h, w, p["fan_apex"], p["fan_half_angle"], 0.35 * h, 1.4 * h)
        ps = _ellipse((h, w), p["ps_centre"], p["ps_axes"], p["ps_angle"])
        fh = _ellipse((h, w), p["fh_centre"], p["fh_axes"], p["fh_angle"])
        if fh.sum() == 0 or ps.sum() == 0:
            continue
        grown = cv2.dilate(ps.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        border = np.zeros((h, w), bool)
        border[[0, -1], :] = border[:, [0, -1]] = True
        if (grown & fh).any() or ((ps | fh) & ~fan).any() or ((ps | fh) & border).any():
            continue
        lab = np.where(fh, FH, 0).astype(np.uint8)
        lab[ps] = PS
        m = measure_mask(lab)
        if not (m.ok and lo <= m.aop <= hi):
            continue
        img = _render(rng, lab, fan, p, noise)
        if mirrored:
            img, lab, fan = (np.ascontiguousarray(a[:, ::-1]) for a in (img, lab, fan))
            m = measure_mask(lab)
        params = {**p, "seed": seed, "mirrored": mirrored, "size": (h, w), "noise": noise}
        return Phantom(img, lab, fan, m.landmarks, m.aop, m.hsd, params)
    raise ValueError(f"no phantom with AoP in {aop_range} found in {_MAX_TRIES} tries (seed {seed})")


def make_phantoms(n: int, *, seed: int = 0, mirrored_fraction: float = 0.0, **kw: Any) -> list[Phantom]:
    """``n`` phantoms with per-item seeds derived from ``seed``; a share ``mirrored_fraction`` mirrored."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= mirrored_fraction <= 1.0:
        raise ValueError(f"mirrored_fraction must be in [0, 1], got {mirrored_fraction}")
    seeds = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32) if n else []
    n_mirror = round(n * mirrored_fraction)
    return [make_phantom(int(s), mirrored=i < n_mirror, **kw) for i, s in enumerate(seeds)]
