"""Measuring files on disk with a :class:`~partus.predict.Predictor`: batches of image files, overlays,
masks and output names. Used by the CLI and the web service (clips: :mod:`partus.clip`); every file is
written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import (
    ImageData,
    as_gray_uint8,
    read_any,
    write_mask,
    write_png,
)
from .io import file_stem as stem
from .io.datasets import VIDEO_EXTENSIONS
from .io.images import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, MEDICAL_EXTENSIONS
from .predict import Prediction, Predictor
from .viz import draw_overlay

__all__ = [
    "IMAGE_SUFFIXES",
    "MultiFrameError",
    "is_video",
    "iter_file_predictions",
    "unique_stems",
    "write_mask_file",
    "write_overlay",
]

#: Single-image formats ``partus predict`` picks up from a folder.
IMAGE_SUFFIXES = IMAGE_EXTENSIONS + MEDICAL_EXTENSIONS + DICOM_EXTENSIONS


def unique_stems(paths: Iterable[Path]) -> dict[Path, str]:
    """Output name stems for input files: the file stem, with ``_2``, ``_3``... when two inputs share one
    (``a.png`` and ``a.dcm``, or the same name in two folders), so no output overwrites another."""
    seen: dict[str, int] = {}
    out = {}
    for p in paths:
        base = stem(p)
        seen[base] = seen.get(base, 0) + 1
        out[p] = base if seen[base] == 1 else f"{base}_{seen[base]}"
    return out


def is_video(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def write_overlay(path: str | os.PathLike, pred: Prediction, title: str | None = None) -> Path:
    """The overlay of a prediction (mask, landmarks, PS axis, tangent, angle arc, values) as PNG."""
    return write_png(path, draw_overlay(pred.image, pred.measurement, label_map=pred.label_map, title=title))


def iter_file_predictions(
    predictor: Predictor,
    files: Iterable[Path],
    *,
    batch_size: int = 16,
    pixel_spacing: tuple[float, float] | None = None,
    **kw,
) -> Iterator[tuple[Path, Prediction | InputError]]:
    """Read and predict single-image files in batches; a file that cannot be read yields its
    :class:`InputError` instead of a prediction (the others go on). A multi-frame file yields a
    :class:`MultiFrameError` holding its pixels, so a caller can measure it as a clip without reading it
    again (:func:`measure_clip`)."""
    batch: list[tuple[Path, np.ndarray, tuple[float, float] | None]] = []

    def flush() -> Iterator[tuple[Path, Prediction]]:
        preds = predictor.predict([b[1] for b in batch], pixel_spacing=[b[2] for b in batch], **kw)
        yield from zip((b[0] for b in batch), preds, strict=True)
        batch.clear()

    for path in files:
        try:
            data = read_any(path)
            if data.frames > 1:
                raise MultiFrameError(path, data)
            gray = as_gray_uint8(data.pixels, str(path))  # bad pixels (NaN...) fail this file, not the batch
            batch.append((path, gray, pixel_spacing or data.pixel_spacing))
        except InputError as exc:
            yield path, exc
            continue
        except Exception as exc:  # noqa: BLE001 - a reader library failing in an unforeseen way: report, go on
            yield path, InputError(path, f"could not be read: {type(exc).__name__}: {exc}")
            continue
        if len(batch) == batch_size:
            yield from flush()
    if batch:
        yield from flush()


class MultiFrameError(InputError):
    """A clip (multi-frame file) where one image was expected; ``data`` holds what was read."""

    def __init__(self, path: str | os.PathLike, data: ImageData):
        super().__init__(path, f"has {data.frames} frames; measure clips with 'partus measure'")
        self.data = data


def write_mask_file(folder: Path, name: str, pred: Prediction) -> Path | None:
    """The predicted PS/FH mask as ``<name>_mask.png`` (0/1/2) if the model segments."""
    if pred.label_map is None:
        return None
    return write_mask(folder / f"{name}_mask.png", pred.label_map)
