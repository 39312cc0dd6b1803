"""Keypoint- and mask-aware augmentation (albumentations) and the explicit mirror (horizontal flip).

Photometric and affine transforms come from albumentations with ``KeypointParams(format="xy")``, whose
affine/flip keypoint maps agree with partus' pixel-centre convention (checked in the tests).
Resizing is *not* done here: albumentations' ``Resize`` maps keypoints as ``x * s``, 0.5 * (1 - s) px
away from the resized image content; partus resizes with :func:`partus.decode.to_grid_coords`.

A horizontal flip turns a scan into a mirrored scan. How landmarks follow it is a choice, never silent:

``anatomical``
    Landmarks keep their anatomical identity (PS1 stays the inferior end). Right for models that
    should output anatomical landmarks on scans of either orientation.
``official``
    Landmarks are re-derived from the flipped mask by the official rule (PS1 = larger-x end), as the
    datasets' ground truth is for mirrored scans. Needs a mask.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any

import numpy as np

from ..config import AugmentConfig
from ..conventions import parse_enum

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__all__ = ["AugmentConfig", "FlipPolicy", "apply_augment", "build_augment", "hflip", "random_fan"]


class FlipPolicy(StrEnum):
    ANATOMICAL = "anatomical"
    OFFICIAL = "official"


def build_augment(params: AugmentConfig):
    """An albumentations ``Compose`` over ``image`` (uint8 H x W), ``mask`` and ``keypoints`` (K, 2)."""
    import albumentations as A
    import cv2

    t = []
    if params.p_affine > 0:
        t.append(
            A.Affine(
                rotate=(-params.rotate_deg, params.rotate_deg),
                scale=(1 - params.scale, 1 + params.scale),
                translate_percent=(-params.translate, params.translate),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=params.p_affine,
            )
        )
    if params.p_color > 0:
        t.append(A.RandomBrightnessContrast(params.brightness, params.contrast, p=params.p_color))
    if params.p_gamma > 0:
        t.append(A.RandomGamma(gamma_limit=params.gamma, p=params.p_gamma))
    if params.p_blur > 0:
        t.append(A.GaussianBlur(blur_limit=(3, 5), p=params.p_blur))
    if params.p_speckle > 0:
        s = params.speckle
        t.append(A.MultiplicativeNoise(multiplier=(1 - s, 1 + s), elementwise=True, p=params.p_speckle))
    return A.Compose(t, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), seed=0)


def hflip(
    image: np.ndarray, points: np.ndarray, mask: np.ndarray | None, policy: FlipPolicy | str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mirror a scan left-right; landmarks follow ``policy`` (see the module docstring).

    Raises
    ------
    ValueError
        ``official`` without a mask, or a flipped mask that is not measurable.
    """
    from ..geometry import landmarks_from_mask

    policy = parse_enum(FlipPolicy, policy, "flip_policy")
    w = image.shape[1]
    img = np.ascontiguousarray(image[:, ::-1])
    msk = None if mask is None else np.ascontiguousarray(mask[:, ::-1])
    if policy == FlipPolicy.ANATOMICAL:
        pts = np.array(points, dtype=float)
        pts[:, 0] = (w - 1) - pts[:, 0]
        return img, pts, msk
    if msk is None:
        raise ValueError("flip_policy='official' re-derives landmarks from the mask; this sample has none")
    return img, landmarks_from_mask(msk).to_array(), msk


def apply_augment(
    compose: Any, image: np.ndarray, points: np.ndarray, mask: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Run ``compose`` with a per-call seed (so a resumed run replays the same augmentations)."""
    compose.set_random_seed(seed)
    kw: dict[str, Any] = {"image": image, "keypoints": np.asarray(points, dtype=np.float32)}
    if mask is not None:
        kw["mask"] = mask
    out = compose(**kw)
    pts = np.asarray(out["keypoints"], dtype=float)[:, :2]
    return out["image"], pts, out.get("mask")


def random_fan(
    image: np.ndarray,
    points: np.ndarray,
    rng: np.random.Generator,
    mask: np.ndarray | None = None,
    margin_deg: float = 4.0,
) -> np.ndarray:
    """The scan redrawn inside another scanner's sector: the anatomy stays in view, the screen changes.

    A sector with a random apex (above the top edge, near the centre) and half-angle, optionally a
    depth limit, is kept; outside it the screen becomes a random gray, sometimes with a UI bar along
    the top or bottom edge. The sector always contains every landmark with ``margin_deg`` (and at
    least 2 px) to spare, so the landmarks stay right; when no sector of at most 85 deg can, the image
    is returned unchanged. The depth limit and the bar also spare every labelled pixel of ``mask``; the
    sector's sides may cut the head's flanks, as a narrower fan does, and those pixels keep their label
    (the head goes on beyond the screen's edge). A family of screens, not the shift suite's ``fan`` (one
    fixed narrower sector, which may cut the anatomy off).
    """
    h, w = image.shape
    apex = np.array([(w - 1) / 2 + rng.uniform(-0.1, 0.1) * w, rng.uniform(-0.5 * h, -1.0)])
    d = np.asarray(points, float) - apex
    r = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)  # the margin is at least 2 px, even near the apex
    pad = np.maximum(margin_deg, np.degrees(np.arcsin(np.minimum(1.0, 2.0 / r))))
    need = float((np.degrees(np.abs(np.arctan2(d[:, 0], d[:, 1]))) + pad).max())
    if not np.isfinite(need) or need >= 85.0:
        return image
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    inside = np.degrees(np.abs(np.arctan2(xx - apex[0], yy - apex[1]))) <= rng.uniform(need, max(need, 75.0))
    if rng.random() < 0.5:  # a depth limit beyond the deepest landmark and labelled pixel
        ys, xs = np.nonzero(mask) if mask is not None else (np.zeros(0), np.zeros(0))
        reach = max(np.hypot(d[:, 0], d[:, 1]).max(), np.hypot(xs - apex[0], ys - apex[1]).max(initial=0)) * 1.05
        inside &= np.hypot(xx - apex[0], yy - apex[1]) <= rng.uniform(reach, 1.6 * reach)
    out = np.where(inside, image.astype(np.float32), np.float32(rng.uniform(0.0, 60.0)))
    if rng.random() < 0.5:  # a UI bar, where it hides no landmark and no labelled pixel
        t = max(2, int(rng.uniform(0.02, 0.06) * h))
        top = rng.random() < 0.5
        ys = np.asarray(points, float)[:, 1]
        rows = slice(0, t) if top else slice(h - t, h)
        clear = (ys >= t + 1).all() if top else (ys <= h - t - 2).all()
        if clear and (mask is None or not mask[rows].any()):
            out[rows] = rng.uniform(80.0, 220.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
