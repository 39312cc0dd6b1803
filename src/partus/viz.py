"""Overlays: landmarks, symphysis axis, tangent line, angle arc, masks and values on the image.

OpenCV only (fast, no matplotlib). Small images are drawn upscaled so text and lines stay legible.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from .conventions import FH, PS
from .measurement import Measurement

# BGR colours
_PS_COLOUR = (60, 200, 255)  # amber
_FH_COLOUR = (255, 160, 60)  # blue
_ANGLE_COLOUR = (80, 255, 80)  # green
_BAD_COLOUR = (60, 60, 255)  # red
_TEXT_BG = (0, 0, 0)


def _to_bgr(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        lo, hi = float(np.min(img)), float(np.max(img))
        img = np.zeros(img.shape, np.uint8) if hi <= lo else ((img - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return img.copy()
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {img.shape}")


def _ray_end(origin: np.ndarray, through: np.ndarray, length: float) -> np.ndarray:
    d = through - origin
    n = math.hypot(*d)
    return origin if n == 0 else origin + d / n * length


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour, thickness: int) -> None:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = org
    cv2.rectangle(img, (x - 3, y - h - 4), (x + w + 3, y + base + 2), _TEXT_BG, -1)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def draw_overlay(
    image: Any,
    measurement: Measurement,
    *,
    label_map: Any = None,
    min_size: int = 512,
    title: str | None = None,
) -> np.ndarray:
    """Draw a measurement on its image.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, 3) BGR
        The image the measurement was made on (any dtype; rescaled to 8 bit for display).
    measurement : Measurement
        Landmarks in ``(x, y)`` pixels of ``image``.
    label_map : array_like, shape (H, W), optional
        PS (1) / FH (2) mask, drawn as translucent fills with outlines.
    min_size : int
        The shorter side is upscaled to at least this many pixels for legibility.
    title : str, optional
        A line of text at the top (e.g. the file name).

    Returns
    -------
    ndarray, shape (H', W', 3), uint8, BGR
    """
    base = _to_bgr(image)
    h, w = base.shape[:2]
    s = max(1.0, min_size / min(h, w))
    img = cv2.resize(base, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR) if s > 1 else base
    lw = max(1, round(s))
    fscale = 0.45 * max(1.0, min(img.shape[:2]) / 512) + 0.15

    if label_map is not None:
        lab = np.asarray(label_map)
        if lab.shape != (h, w):
            raise ValueError(f"label_map must have the image's shape {(h, w)}, got {lab.shape}")
        big = cv2.resize(lab.astype(np.uint8), img.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        fill = img.copy()
        for value, colour in ((PS, _PS_COLOUR), (FH, _FH_COLOUR)):
            m = big == value
            fill[m] = colour
            cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(img, cs, -1, colour, lw, cv2.LINE_AA)
        img = cv2.addWeighted(fill, 0.25, img, 0.75, 0)

    lm = measurement.landmarks
    if lm is not None:
        ps1, ps2, fh1 = (p * s for p in lm.to_array())
        length = 0.35 * min(img.shape[:2])
        tip_axis = _ray_end(ps1, ps2, max(length, math.dist(ps1, ps2)))
        tip_tan = _ray_end(ps1, fh1, max(length, math.dist(ps1, fh1) * 1.3))
        colour = _ANGLE_COLOUR if measurement.ok else _BAD_COLOUR
        cv2.line(img, _pt(ps1), _pt(tip_axis), _PS_COLOUR, lw + 1, cv2.LINE_AA)
        cv2.line(img, _pt(ps1), _pt(tip_tan), colour, lw + 1, cv2.LINE_AA)
        if math.isfinite(measurement.aop):
            a0 = math.degrees(math.atan2(*(ps2 - ps1)[::-1]))
            a1 = math.degrees(math.atan2(*(fh1 - ps1)[::-1]))
            sweep = (a1 - a0 + 180) % 360 - 180  # signed smaller arc from the axis to the tangent
            r = int(0.12 * min(img.shape[:2]))
            cv2.ellipse(img, _pt(ps1), (r, r), 0, a0, a0 + sweep, colour, lw + 1, cv2.LINE_AA)
        for name, p, c in (("PS1", ps1, _PS_COLOUR), ("PS2", ps2, _PS_COLOUR), ("FH1", fh1, _FH_COLOUR)):
            cv2.circle(img, _pt(p), 3 * lw + 1, (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(img, _pt(p), 3 * lw, c, -1, cv2.LINE_AA)
            _text(img, name, (int(p[0]) + 6 * lw, int(p[1]) - 4 * lw), fscale * 0.8, c, 1)

    lines: list[tuple[str, tuple[int, int, int], int]] = []  # (text, colour, thickness)
    if title:
        lines.append((title, (255, 255, 255), 1))
    if measurement.ok:
        hsd = "" if not math.isfinite(measurement.hsd) else f"   HSD {measurement.hsd:.1f} {measurement.hsd_unit}"
        lines.append((f"AoP {measurement.aop:.1f} deg{hsd}", (255, 255, 255), 2))
        if measurement.orientation.value != "standard":
            lines.append((f"orientation: {measurement.orientation.value}", (255, 255, 255), 1))
    else:
        lines.append((f"NOT MEASURABLE: {measurement.reason}", _BAD_COLOUR, 2))
    y = int(28 * fscale / 0.6)
    for text, colour, thickness in lines:
        _text(img, text, (8, y), fscale, colour, thickness)
        y += int(26 * fscale / 0.6)
    return img


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))
