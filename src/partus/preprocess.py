"""Image -> network input, stated once for training, validation and ONNX inference."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["resize_image", "to_input"]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 ``(H, W)`` image to ``(size, size)``: area averaging when shrinking, bilinear when
    enlarging. Landmarks map with :func:`partus.decode.to_grid_coords` (pixel edges align)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, S, S)`` or ``(S, S)`` -> float32 ``(N, 1, S, S)`` in [0, 1] (the models' input scale)."""
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    return (x.astype(np.float32) / 255.0)[:, None]
