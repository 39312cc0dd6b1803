"""Seeded synthetic transperineal-ultrasound phantoms with exact masks, landmarks and AoP.

A phantom is a fan-shaped (sector) field of view from a virtual apex above the image, with speckled,
depth-attenuated tissue, a bright elongated pubic symphysis (PS) in the upper left casting an acoustic
shadow, and a fetal head (FH: darker interior, bright skull rim) below and to the right of it. The
ground truth is derived from the rasterised label map by the official rule
(:func:`partus.geometry.measure_mask`), exactly as the real datasets' ground truth is, so a phantom's
landmarks are integer contour points. NumPy + OpenCV only (no torch). Used by tests and smoke training.

Lengths scale with ``min(H, W)``, positions with ``H`` and ``W``; any size from 64 px works,
square or not.
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
_GAP = 3  #: px of background at least between the symphysis and the head


@dataclass(frozen=True, eq=False)
class Phantom:
    """One synthetic scan and its exact ground truth.

    Attributes
    ----------
    image : ndarray, shape (H, W), uint8
        The scan; 0 outside the field of view.
    label_map : ndarray, shape (H, W), uint8
        0 background, 1 pubic symphysis, 2 fetal head.
    fov : ndarray, shape (H, W), bool
        The fan-shaped field of view.
    landmarks : Landmarks
        PS1, PS2, FH1 by the official rule on ``label_map`` (integer contour points).
    aop : float
        Angle of Progression of ``landmarks`` in degrees (official rule: < 90 for mirrored phantoms).
    hsd : float
        Head-symphysis distance (``nearest``) in px.
    params : dict
        Generating parameters in the returned (possibly mirrored) frame: ``ps_centre`` (x, y),
        ``ps_length``, ``ps_width`` (full extents, px), ``ps_angle`` (deg, direction of the long axis;
        y down), ``fh_centre``, ``fh_axes`` (semi-axes, px), ``fh_angle`` (deg), ``fan_apex`` (x, y),
        ``fan_half_angle`` (deg), ``fan_radii`` (inner, outer, px), ``target_aop`` (deg), ``mirrored``,
        ``seed``, ``size`` (H, W), ``noise``, ``tries`` (scenes sampled until one was accepted).
    """

    image: np.ndarray
    label_map: np.ndarray
    fov: np.ndarray
    landmarks: Landmarks
    aop: float
    hsd: float
    params: dict[str, Any] = field(default_factory=dict)


def _ellipse(shape: tuple[int, int], centre, semi_axes, angle_deg: float) -> np.ndarray | None:
    """Pixels whose centres lie in the ellipse; None if its bounding box leaves the image's 1-px margin."""
    (a, b), t = semi_axes, math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    ex, ey = math.hypot(a * c, b * s), math.hypot(a * s, b * c)
    x0, x1 = math.floor(centre[0] - ex), math.ceil(centre[0] + ex)
    y0, y1 = math.floor(centre[1] - ey), math.ceil(centre[1] + ey)
    if x0 < 1 or y0 < 1 or x1 > shape[1] - 2 or y1 > shape[0] - 2:
        return None
    yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float32)
    dx, dy = xx - centre[0], yy - centre[1]
    out = np.zeros(shape, bool)
    out[y0 : y1 + 1, x0 : x1 + 1] = ((dx * c + dy * s) / a) ** 2 + ((-dx * s + dy * c) / b) ** 2 <= 1.0
    return out


def _scene(rng: np.random.Generator, h: int, w: int, aop_range: tuple[float, float]) -> dict[str, Any]:
    """Sample a scene whose continuous geometry has the target AoP.

    The head ellipse is placed tangent to the ray from the symphysis' right end (PS1) that makes the
    target angle with the symphysis axis, on the side towards PS2, so the tangent from PS1 touches it.
    """
    s = min(h, w)
    ps_len, ps_wid = s * rng.uniform(0.22, 0.36), s * rng.uniform(0.05, 0.085)
    ps_angle = rng.uniform(-30.0, 10.0)  # PSFHS: PS1 usually a little higher than PS2 (median -13 deg)
    ps_c = np.array([w * rng.uniform(0.22, 0.5), h * rng.uniform(0.12, 0.3)])
    major = s * rng.uniform(0.25, 0.36)
    axes = (major, major * rng.uniform(0.75, 0.95))
    fh_angle = rng.uniform(0.0, 180.0)
    target = rng.uniform(*aop_range)
    e = np.array([math.cos(math.radians(ps_angle)), math.sin(math.radians(ps_angle))])
    ps1 = ps_c + 0.5 * ps_len * e
    a_d = math.atan2(-e[1], -e[0]) - math.radians(target)  # tangent direction from PS1
    d = np.array([math.cos(a_d), math.sin(a_d)])
    m = -np.array([math.cos(a_d + math.pi / 2), math.sin(a_d + math.pi / 2)])  # from head towards line
    touch = ps1 + s * rng.uniform(0.1, 0.4) * d
    t = math.radians(fh_angle)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    cov = rot @ np.diag(np.square(axes)) @ rot.T
    fh_c = touch - cov @ m / math.sqrt(m @ cov @ m)  # the head's extreme point towards m is `touch`
    apex_y = -h * rng.uniform(0.25, 0.35)
    return {
        "ps_centre": tuple(ps_c), "ps_length": ps_len, "ps_width": ps_wid, "ps_angle": ps_angle,
        "fh_centre": tuple(fh_c), "fh_axes": axes, "fh_angle": fh_angle, "target_aop": target,
        "fan_apex": ((w - 1) / 2, apex_y), "fan_half_angle": rng.uniform(36.0, 46.0),
        "fan_radii": (-apex_y + h * rng.uniform(0.03, 0.07), -apex_y + h * rng.uniform(0.9, 1.0)),
    }  # fmt: skip


def _fan(xx: np.ndarray, yy: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth from the apex, angle from the beam axis, and approximate distance (px) inside the fan."""
    (r0, r1), half = p["fan_radii"], math.radians(p["fan_half_angle"])
    dx, dy = xx - p["fan_apex"][0], yy - p["fan_apex"][1]
    r, th = np.hypot(dx, dy), np.arctan2(dx, dy)
    return r, th, np.minimum(np.minimum(r - r0, r1 - r), np.sin(half - np.abs(th)) * r)


def _accept(lab: np.ndarray, lo: float, hi: float, mirrored: bool):
    """The official-rule measurement of ``lab`` if it satisfies the constraints, else None.

    A mirrored scene must in addition give an official AoP < 90 once flipped, and an AoP in range with
    ``orientation="mirrored"``.
    """
    m = measure_mask(lab)  # not allow_border: a PS endpoint on the border is rejected
    if not (m.ok and lo <= m.aop <= hi):
        return None
    if not mirrored:
        return m
    flipped = lab[:, ::-1]
    mf, mo = measure_mask(flipped), measure_mask(flipped, orientation="mirrored")
    return m if mf.ok and mf.aop < 90 and mo.ok and lo <= mo.aop <= hi else None


def _render(rng: np.random.Generator, lab: np.ndarray, p: dict, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Image and field of view; the random fields live on a polar (depth x angle) grid."""
    h, w = lab.shape
    f = min(h, w) / 256
    r, th, inside = _fan(*np.mgrid[0:h, 0:w][::-1].astype(np.float32), p)
    (r0, r1), half = p["fan_radii"], math.radians(p["fan_half_angle"])
    nr, nt = int(r1 - r0) + 1, int(2 * half * (r0 + r1) / 2) + 1
    col = ((th + half) / (2 * half) * (nt - 1)).astype(np.float32)
    row = ((r - r0) / (r1 - r0) * (nr - 1)).astype(np.float32)

    def to_cart(a: np.ndarray) -> np.ndarray:
        return cv2.remap(a.astype(np.float32), col, row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def smooth(sigma_t: float, sigma_r: float) -> np.ndarray:  # zero-mean, unit-std random field
        k = max(1.0, min(sigma_t, sigma_r) * f / 2)  # blur on a coarser grid, then upsample
        z = rng.standard_normal((math.ceil(nr / k), math.ceil(nt / k))).astype(np.float32)
        z = cv2.resize(cv2.GaussianBlur(z, (0, 0), sigma_t * f / k, sigmaY=sigma_r * f / k), (nt, nr))
        return (z - z.mean()) / (z.std() + 1e-6)

    # tissue: smooth echogenicity, layered streaks concentrated in the near field
    tissue = rng.uniform(50, 80) * np.clip(1 + 0.3 * smooth(14, 6) + 0.2 * smooth(4, 1.5), 0.1, None)
    streaks = np.zeros((nr, nt), np.float32)
    for _ in range(rng.integers(15, 35)):
        y0, x0 = nr * rng.beta(1.3, 2.5), rng.uniform(-0.1, 1.0) * nt
        x1 = x0 + nt * rng.uniform(0.1, 0.5)
        pts = np.array([[x0, y0], [(x0 + x1) / 2, y0 + rng.normal(0, 0.03 * nr)], [x1, y0 + rng.normal(0, 0.05 * nr)]])
        cv2.polylines(streaks, [np.round(pts).astype(np.int32)], False, float(rng.uniform(0.3, 1.0)), max(1, round(f)))
    tissue = tissue + rng.uniform(150, 220) * cv2.GaussianBlur(streaks, (0, 0), 1.5 * f, sigmaY=0.6 * f)
    img = to_cart(tissue)

    # fetal head: darker interior, bright skull rim just inside the mask boundary (brightest near the probe)
    head = lab == FH
    dist_in = cv2.distanceTransform(head.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    rim_w = rng.uniform(4.0, 7.0) * f
    rim = np.exp(-(((dist_in - rim_w) / rim_w) ** 2)) * head
    rim_level = rng.uniform(170, 240) * np.clip(1 + 0.35 * to_cart(smooth(10, 10)), 0.3, None)
    img = np.where(head, img * rng.uniform(0.35, 0.6), img)
    img = img + rim_level * cv2.GaussianBlur(rim.astype(np.float32), (0, 0), 0.7 * f) * np.exp(-0.5 * row / nr)

    # pubic symphysis: bright bone, brightest at its surface, shadowing the depth below it
    ps = lab == PS
    ps_f = cv2.GaussianBlur(ps.astype(np.float32), (0, 0), 0.8 * f)
    edge = ps & ~cv2.erode(ps.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    ps_level = rng.uniform(130, 190) * (1 + 0.6 * cv2.GaussianBlur(edge.astype(np.float32), (0, 0), f))
    img = img * (1 - ps_f) + ps_level * ps_f
    rr, tt = np.mgrid[0:nr, 0:nt].astype(np.float32)
    x = p["fan_apex"][0] + (r0 + rr * (r1 - r0) / (nr - 1)) * np.sin(-half + tt * 2 * half / (nt - 1))
    y = p["fan_apex"][1] + (r0 + rr * (r1 - r0) / (nr - 1)) * np.cos(-half + tt * 2 * half / (nt - 1))
    behind = np.maximum.accumulate(cv2.remap(ps.astype(np.float32), x, y, cv2.INTER_LINEAR), axis=0)
    shadow = 1 - rng.uniform(0.4, 0.75) * cv2.GaussianBlur(behind, (0, 0), 2 * f, sigmaY=4 * f)
    img = np.where(ps, img, img * to_cart(shadow))

    # depth attenuation, multiplicative speckle (Rayleigh, blurred; elongated across the beam, as the
    # lateral resolution is coarser than the axial one), a slight PSF blur, the fan's edges
    speckle = rng.rayleigh(1.0, (nr, nt)).astype(np.float32)
    speckle = cv2.GaussianBlur(speckle, (0, 0), 2.5 * f, sigmaY=0.7 * f)
    speckle = np.clip(1 + noise * 0.6 * (speckle - speckle.mean()) / speckle.std(), 0, None)
    img = img * to_cart(speckle) * np.exp(-rng.uniform(0.6, 1.3) * row / nr)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.5 * f)
    img = img * np.clip(inside / (2 * f), 0, 1)
    return np.where(inside > 0, np.clip(np.round(img), 0, 255), 0).astype(np.uint8), inside > 0


def make_phantom(
    seed: int,
    *,
    size: int | tuple[int, int] = 256,
    mirrored: bool = False,
    aop_range: tuple[float, float] = (95.0, 160.0),
    noise: float = 1.0,
) -> Phantom:
    """One phantom, deterministic in ``seed`` (same seed, same arrays).

    Scenes are sampled (from the continuous geometry aimed at a target AoP) until both structures lie
    inside the image (1-px margin) and the fan (2-px margin), do not overlap, are at least 3 px of
    background apart, no PS endpoint is on the image border, and the AoP of the rasterised mask by the
    official rule is in ``aop_range``.

    Parameters
    ----------
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    size : int or (height, width)
        Image size in px, at least 64.
    mirrored : bool
        Flip the scene left-right (the head lies beyond the *left* end of the symphysis, as in ~20% of
        real scans). The official rule then gives AoP < 90 deg (``aop`` and ``landmarks`` follow the
        official rule), and ``measure_mask(label_map, orientation="mirrored")`` an AoP in
        ``aop_range``. Only scenes meeting both qualify: in practice an unflipped AoP above ~105 deg
        (below, the official rule gives > 90 on the flipped scene too), so a low ``aop_range`` may have
        no mirrored phantom, and ``mirrored=True`` with a seed is not the flipped phantom of that seed.
    aop_range : (low, high)
        AoP of the unflipped scene by the official rule, degrees, ``90 <= low < high <= 180``.
    noise : float
        Speckle strength, ``>= 0`` (0: no speckle, 1: default).

    Returns
    -------
    Phantom

    Raises
    ------
    ValueError
        If an argument is invalid, or no scene satisfying the constraints is found in 500 tries.

    Examples
    --------
    >>> p = make_phantom(0, size=128)
    >>> p.image.shape, 95 <= p.aop <= 160
    ((128, 128), True)
    """
    h, w = (size, size) if isinstance(size, int | np.integer) else tuple(int(v) for v in size)
    if min(h, w) < 64:
        raise ValueError(f"size must be at least 64 px, got {(h, w)}")
    lo, hi = (float(v) for v in aop_range)
    if not 90 <= lo < hi <= 180:
        raise ValueError(f"aop_range must satisfy 90 <= low < high <= 180, got {aop_range}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _GAP + 1, 2 * _GAP + 1))
    for tries in range(1, _MAX_TRIES + 1):
        p = _scene(rng, h, w, (lo, hi))
        ps = _ellipse((h, w), p["ps_centre"], (p["ps_length"] / 2, p["ps_width"] / 2), p["ps_angle"])
        fh = _ellipse((h, w), p["fh_centre"], p["fh_axes"], p["fh_angle"])
        if ps is None or fh is None or not (ps.any() and fh.any()):
            continue
        yx = np.nonzero(ps | fh)
        if (_fan(yx[1], yx[0], p)[2] < 2).any():
            continue
        if (cv2.dilate(ps.astype(np.uint8), disk).astype(bool) & fh).any():
            continue
        lab = np.where(fh, FH, 0).astype(np.uint8)
        lab[ps] = PS
        m = _accept(lab, lo, hi, mirrored)
        if m is None:
            continue
        img, fov = _render(rng, lab, p, noise)
        if mirrored:
            img, lab, fov = (np.ascontiguousarray(a[:, ::-1]) for a in (img, lab, fov))
            m = measure_mask(lab)
            for k in ("ps_centre", "fh_centre", "fan_apex"):
                p[k] = (w - 1 - p[k][0], p[k][1])
            p["ps_angle"], p["fh_angle"] = -p["ps_angle"], (180.0 - p["fh_angle"]) % 180.0
        params = {**p, "mirrored": mirrored, "seed": seed, "size": (h, w), "noise": noise, "tries": tries}
        return Phantom(img, lab, fov, m.landmarks, m.aop, m.hsd, params)
    hint = " (mirrored phantoms need an AoP above ~105 deg)" if mirrored else ""
    raise ValueError(
        f"no phantom with AoP in {aop_range} found in {_MAX_TRIES} tries (seed {seed}, size {(h, w)}){hint}"
    )


def make_phantoms(n: int, *, seed: int = 0, mirrored_fraction: float = 0.0, **kw: Any) -> list[Phantom]:
    """``n`` phantoms; a random ``round(n * mirrored_fraction)`` of them mirrored.

    Item ``i`` is ``make_phantom(s_i, ...)`` with ``s_i`` the ``i``-th word of
    ``numpy.random.SeedSequence(seed)`` (independent of ``n``); which items are mirrored is drawn from
    the same seed. Other keywords go to :func:`make_phantom`.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= mirrored_fraction <= 1.0:
        raise ValueError(f"mirrored_fraction must be in [0, 1], got {mirrored_fraction}")
    seeds = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32) if n else []
    flip = np.zeros(n, bool)
    flip[np.random.default_rng([seed, n]).permutation(n)[: round(n * mirrored_fraction)]] = True
    return [make_phantom(int(s), mirrored=bool(flip[i]), **kw) for i, s in enumerate(seeds)]
