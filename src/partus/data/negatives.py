"""Proxies for scans that must be refused: ultrasound that is not a measurable intrapartum view.

Real non-intrapartum ultrasound (fetal head biometry, breast, thyroid, heart) is not in the project's
data; these proxies, made from labelled intrapartum scans, test the same failure: a network that is
asked for a symphysis and a head where there is none must say so rather than return an angle.

``head_only``
    The lower part of the scan (below the symphysis) enlarged to the full frame: a head, no symphysis,
    as in a biometry view.
``tissue``
    A small patch of the sector enlarged x3: speckled tissue texture, no anatomy of interest (breast,
    thyroid-like).
``noise_fan``
    Pure speckle inside a sector, matched in brightness to the scan.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["NEGATIVE_PROXIES", "negative_proxy"]

NEGATIVE_PROXIES = ("head_only", "tissue", "noise_fan")


def negative_proxy(name: str, image: np.ndarray, points: np.ndarray, *, seed: int = 0, index: int = 0) -> np.ndarray:
    """The proxy ``name`` made from one labelled scan (uint8 ``H x W``; ``points`` its landmarks)."""
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"image must be a 2-D uint8 array, got {img.dtype} {img.shape}")
    h, w = img.shape
    rng = np.random.default_rng([seed, index, *name.encode()])
    if name == "head_only":
        top = int(min(h - 8, max(np.asarray(points, float)[:2, 1].max() + 0.08 * h, 0.35 * h)))
        return cv2.resize(img[top:], (w, h), interpolation=cv2.INTER_LINEAR)
    if name == "tissue":
        s = max(8, min(h, w) // 3)
        y = int(rng.integers(h // 3, max(h // 3 + 1, h - s)))
        x = int(rng.integers(w // 4, max(w // 4 + 1, w - w // 4 - s)))
        return cv2.resize(img[y : y + s, x : x + s], (w, h), interpolation=cv2.INTER_CUBIC)
    if name == "noise_fan":
        yy, xx = np.mgrid[0:h, 0:w]
        ang = np.degrees(np.arctan2(xx - (w - 1) / 2, yy + 0.1 * h))
        fan = (np.abs(ang) <= 40) & (yy < 0.95 * h)
        level = float(img[img > 3].mean()) if (img > 3).any() else 60.0
        noise = rng.rayleigh(level / 1.25, size=(h, w))
        return np.clip(noise * fan, 0, 255).astype(np.uint8)
    raise KeyError(f"unknown proxy {name!r}; known: {', '.join(NEGATIVE_PROXIES)}")
