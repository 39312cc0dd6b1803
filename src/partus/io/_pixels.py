"""Shared pieces of the image readers: :class:`ImageData`, file checks and colour-to-gray conversion."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

#: ITU-R BT.601 luma weights for (R, G, B), the weights OpenCV and Pillow use for RGB -> gray.
LUMA_RGB = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ImageData:
    """Pixels of one image file, with its physical pixel size when the file states one.

    Attributes
    ----------
    pixels : ndarray, shape (H, W) or (F, H, W)
        Gray pixels: ``(H, W)`` for a single image, ``(F, H, W)`` for a multi-frame file (``F > 1``).
        The dtype is the file's own (``uint8``, ``uint16``, ``int16``...); nothing is rescaled.
    pixel_spacing : tuple of float (sx, sy) or None
        Millimetres per pixel along x (between columns) and y (between rows); ``None`` when unknown.
    source : str
        The file the pixels came from.
    frames : int
        Number of frames (1 for a single 2-D image).
    """

    pixels: np.ndarray
    pixel_spacing: tuple[float, float] | None
    source: str
    frames: int

    def __post_init__(self) -> None:
        ndim = self.pixels.ndim
        expected = 1 if ndim == 2 else (self.pixels.shape[0] if ndim == 3 else None)
        if expected is None or self.frames != expected:
            raise InputError(self.source, f"pixels of shape {self.pixels.shape} do not match frames={self.frames}")


def image_data(pixels: np.ndarray, spacing: tuple[float, float] | None, source: str | os.PathLike) -> ImageData:
    """Build an :class:`ImageData`, checking that ``pixels`` is a non-empty 2-D or 3-D array."""
    if pixels.ndim not in (2, 3):
        raise InputError(source, f"expected a 2-D image or a stack of frames, got {pixels.ndim}-D pixels")
    if pixels.size == 0:
        raise InputError(source, f"image has zero size (shape {pixels.shape})")
    if pixels.ndim == 3 and pixels.shape[0] == 1:
        pixels = pixels[0]
    frames = 1 if pixels.ndim == 2 else pixels.shape[0]
    return ImageData(pixels=pixels, pixel_spacing=spacing, source=str(source), frames=frames)


def checked_spacing(sx: float, sy: float) -> tuple[float, float] | None:
    """Return ``(sx, sy)`` as floats, or ``None`` unless both are finite and positive."""
    try:
        sx, sy = float(sx), float(sy)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0):
        return None
    return (sx, sy)


def check_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking it is an existing, non-empty regular file."""
    p = Path(path)
    if not p.exists():
        raise InputError(path, "file not found")
    if not p.is_file():
        raise InputError(path, "not a regular file (is it a directory?)")
    if p.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    return p


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole file after :func:`check_file`."""
    return check_file(path).read_bytes()


def to_gray(pixels: np.ndarray, *, order: str = "rgb") -> np.ndarray:
    """Convert ``(..., C)`` colour pixels (C = 3 or 4) to gray by BT.601 luminance, keeping the dtype.

    Alpha (the 4th channel) is dropped, not composited. Integer results are rounded to nearest and
    clipped to the dtype's range, so an image whose channels are identical comes back unchanged.

    Parameters
    ----------
    pixels : ndarray, shape (..., 3) or (..., 4)
        Colour pixels.
    order : {"rgb", "bgr"}
        Channel order (OpenCV decodes to BGR).
    """
    weights = np.array(LUMA_RGB if order == "rgb" else LUMA_RGB[::-1])
    gray = pixels[..., :3].astype(np.float64) @ weights
    if np.issubdtype(pixels.dtype, np.integer):
        info = np.iinfo(pixels.dtype)
        gray = np.clip(np.rint(gray), info.min, info.max)
    return gray.astype(pixels.dtype)
