"""Fixtures of the partus.io tests: small file factories (``shared_data`` comes from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture
def write_image(tmp_path):
    """Write an array with OpenCV's PNG/TIFF/BMP/JPEG encoder (BGR order for colour) and return the path."""

    def write(name: str, pixels: np.ndarray) -> Path:
        path = tmp_path / name
        ok, buf = cv2.imencode(path.suffix, pixels)
        assert ok
        path.write_bytes(buf.tobytes())
        return path

    return write
