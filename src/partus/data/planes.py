"""Weak supervision for the standard-plane head (paper 5's task, IUGC 2024): frames that are *not* a
measurable intrapartum standard plane, made from labelled scans or drawn from scratch.

A standard plane shows the pubic symphysis and the fetal head together (IUGC 2024 frame class 6). The
sweep of a probe passes through frames with only one of them (class 5 head only, class 4 symphysis only),
neither (class 3), and through shadows, lifted-probe frames and off-sector views; a user may also feed
other ultrasound (fetal biometry, breast, thyroid, heart). No such frames are labelled in psfhs-dev, so
:func:`non_standard` builds them (hard negatives first: the same scan with one structure gone):

``no_symphysis`` / ``no_head`` / ``neither``
    The structure's mask region (dilated) filled with the surrounding texture (inpainting plus matched
    speckle): the same scan, same probe, without that structure.
``symphysis_out``
    The view moved so that the symphysis leaves the sector (the probe slid along the perineum).
``shadow``
    An acoustic shadow (rib of the probe, gas, bone) along the beam through the symphysis.
``lifted``
    The probe lifted off the skin: near-field reverberation bands and an empty sector.
``biometry``, ``layered``, ``cardiac``
    Drawn from scratch in a sector with speckle: a skull ellipse with a midline (fetal head biometry),
    horizontal tissue layers with a hypoechoic nodule (breast, thyroid), dark chambers between bright walls
    (heart).
``noise_fan``, ``tissue``, ``head_only``
    The refusal proxies of :mod:`partus.data.negatives`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .negatives import negative_proxy

__all__ = ["DRAWN", "FROM_SCAN", "NON_STANDARD", "non_standard"]

#: Families made from a labelled scan (image, landmarks and PS/FH mask), hardest first.
FROM_SCAN = ("no_symphysis", "no_head", "neither", "symphysis_out", "shadow", "lifted", "tissue", "head_only")
#: Families drawn from scratch (the scan only sets size and brightness).
DRAWN = ("biometry", "layered", "cardiac", "noise_fan")
NON_STANDARD = FROM_SCAN + DRAWN


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _speckle(shape: tuple[int, int], rng: np.random.Generator, grain: int = 2) -> np.ndarray:
    """Unit-mean multiplicative speckle with a grain of about ``grain`` pixels."""
    h, w = shape
    r = rng.rayleigh(1.0, size=(h // grain + 1, w // grain + 1)).astype(np.float32)
    r = cv2.resize(r, (w, h), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return r / max(float(r.mean()), 1e-6)


def _sector(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random convex-probe sector (bool mask)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    apex = ((w - 1) / 2 + rng.uniform(-0.05, 0.05) * w, -rng.uniform(0.05, 0.3) * h)
    ang = np.degrees(np.arctan2(xx - apex[0], yy - apex[1]))
    r = np.hypot(xx - apex[0], yy - apex[1])
    return (np.abs(ang) <= rng.uniform(30, 45)) & (r <= rng.uniform(0.9, 1.15) * h - apex[1])


def _remove(img: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``region`` (bool) filled with the texture around it: inpainting, then speckle matched to the scan."""
    h, w = img.shape
    k = max(3, int(0.04 * min(h, w)) | 1)
    grown = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    filled = cv2.inpaint(img, grown, max(3, k // 2), cv2.INPAINT_TELEA).astype(np.float32)
    grain = 1.0 + rng.uniform(0.3, 0.5) * (_speckle((h, w), rng) - 1.0)  # tissue-like contrast, not pure speckle
    filled = cv2.GaussianBlur(filled, (0, 0), 1.5) * grain * rng.uniform(0.85, 1.0)
    soft = cv2.GaussianBlur(grown.astype(np.float32), (0, 0), k / 3)
    return _u8(img * (1 - soft) + filled * soft)


def _from_scan(name: str, img: np.ndarray, pts: np.ndarray, mask: np.ndarray | None, rng) -> np.ndarray:
    h, w = img.shape
    ps = mask == 1 if mask is not None else None
    fh = mask == 2 if mask is not None else None
    if name in ("no_symphysis", "no_head", "neither"):
        if mask is None:
            raise ValueError(f"{name} needs the scan's PS/FH mask")
        region = {"no_symphysis": ps, "no_head": fh, "neither": ps | fh}[name]
        return _remove(img, region, rng)
    if name == "symphysis_out":  # slide the view until the symphysis (all of it) is past the sector's edge
        xs = pts[:2, 0]
        right = xs.mean() > w / 2
        dx = (w - xs.min() + 0.05 * w) if right else -(xs.max() + 0.05 * w)
        dx *= rng.uniform(0.75, 1.0) if abs(dx) < w else 1.0
        m = np.array([[1, 0, dx], [0, 1, rng.uniform(-0.05, 0.05) * h]], np.float64)
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if name == "shadow":  # a dark band from the probe down through the symphysis
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx = pts[:2, 0].mean() + rng.uniform(-0.05, 0.05) * w
        half = rng.uniform(0.12, 0.25) * w
        depth = np.clip((yy - rng.uniform(0, 0.1) * h) / (0.1 * h), 0, 1)
        band = np.clip(1 - np.abs(xx - cx) / half, 0, 1) ** 0.5 * depth
        return _u8(img * (1 - rng.uniform(0.85, 0.97) * band))
    if name == "lifted":  # gel/air: reverberation bands near the probe, nothing below
        yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
        period = rng.uniform(0.04, 0.08) * h
        bands = (0.5 + 0.5 * np.cos(2 * np.pi * yy / period)) * np.exp(-yy / (rng.uniform(0.15, 0.3) * h))
        level = float(img[img > 3].mean()) if (img > 3).any() else 60.0
        return _u8(2.5 * level * bands * _speckle((h, w), rng) * _sector((h, w), rng))
    return negative_proxy(name, img, pts, seed=int(rng.integers(1 << 31)))


def _drawn(name: str, shape: tuple[int, int], level: float, rng) -> np.ndarray:
    h, w = shape
    sector = _sector(shape, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.full(shape, level * rng.uniform(0.5, 0.9), np.float32)
    if name == "biometry":  # skull ellipse, midline echo, brain parenchyma darker inside
        c = (w * rng.uniform(0.4, 0.6), h * rng.uniform(0.45, 0.65))
        a, b = w * rng.uniform(0.22, 0.32), h * rng.uniform(0.17, 0.26)
        t = np.radians(rng.uniform(-30, 30))
        u = ((xx - c[0]) * np.cos(t) + (yy - c[1]) * np.sin(t)) / a
        v = (-(xx - c[0]) * np.sin(t) + (yy - c[1]) * np.cos(t)) / b
        r = np.sqrt(u**2 + v**2)
        base = np.where(r < 1, base * 0.55, base) + 3.0 * level * np.exp(-(((r - 1) / 0.05) ** 2))
        base += 1.5 * level * np.exp(-((v / 0.03) ** 2)) * (r < 0.9)
    elif name == "layered":  # skin, fat, glandular layers; a dark oval nodule
        y0 = 0.0
        while y0 < h:
            t = rng.uniform(0.05, 0.2) * h
            base[int(y0) : int(y0 + t)] *= rng.uniform(0.4, 1.8)
            y0 += t
        c = (w * rng.uniform(0.3, 0.7), h * rng.uniform(0.35, 0.7))
        inside = ((xx - c[0]) / (w * rng.uniform(0.06, 0.15))) ** 2 + ((yy - c[1]) / (h * rng.uniform(0.04, 0.1))) ** 2
        base = np.where(inside < 1, base * 0.25, base)
    elif name == "cardiac":  # two to four dark chambers with bright walls
        for _ in range(int(rng.integers(2, 5))):
            c = (w * rng.uniform(0.25, 0.75), h * rng.uniform(0.3, 0.8))
            s = (w * rng.uniform(0.08, 0.16), h * rng.uniform(0.08, 0.18))
            r = np.sqrt(((xx - c[0]) / s[0]) ** 2 + ((yy - c[1]) / s[1]) ** 2)
            base = np.where(r < 1, base * 0.1, base) + 1.2 * level * np.exp(-(((r - 1.1) / 0.12) ** 2))
    elif name != "noise_fan":
        raise KeyError(name)
    return _u8(cv2.GaussianBlur(base, (0, 0), 1.0) * _speckle(shape, rng) * sector)


def non_standard(
    name: str, image: np.ndarray, points: np.ndarray, mask: np.ndarray | None = None, *, seed: int = 0, index: int = 0
) -> np.ndarray:
    """The non-standard-plane frame of family ``name`` (:data:`NON_STANDARD`) made from one labelled scan
    (uint8 ``H x W``, landmarks ``(3, 2)``, PS/FH mask 0/1/2 or None); seeded by ``(seed, index, name)``."""
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"image must be a 2-D uint8 array, got {img.dtype} {img.shape}")
    if name not in NON_STANDARD:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(NON_STANDARD)}")
    rng = np.random.default_rng([seed, index, *name.encode()])
    if name in FROM_SCAN:
        return _from_scan(name, img, np.asarray(points, float), mask, rng)
    level = float(img[img > 3].mean()) if (img > 3).any() else 60.0
    return _drawn(name, img.shape, level, rng)


def sweep_frames(
    image: np.ndarray,
    points: np.ndarray,
    mask: np.ndarray | None,
    n_frames: int,
    *,
    segment: int = 40,
    families: tuple[str, ...] = ("no_symphysis", "lifted", "symphysis_out", "noise_fan", "no_head", "biometry"),
    seed: int = 0,
):
    """A synthetic probe sweep over one labelled scan, frame by frame: segments of ``segment`` frames that
    alternate between the standard plane (the scan, drifting by up to 3 px and +-10 % gain: the AoP is that
    of ``points``) and one non-standard family at a time. Yields ``(frame uint8, is_standard)``; memory
    does not depend on ``n_frames``."""
    h, w = image.shape
    rng = np.random.default_rng(seed)
    off = [non_standard(f, image, points, mask, seed=seed, index=k) for k, f in enumerate(families)]
    for i in range(n_frames):
        k, standard = divmod(i // segment, 2)[0], (i // segment) % 2 == 0
        if standard:
            dx, dy = rng.uniform(-3, 3, size=2)
            frame = cv2.warpAffine(image, np.array([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_CONSTANT)
            yield _u8(frame.astype(np.float32) * rng.uniform(0.9, 1.1)), True
        else:
            yield off[k % len(off)], False
