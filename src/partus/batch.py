"""Measuring files on disk with a :class:`~partus.predict.Predictor`: folders of images, multi-frame
DICOM and videos, with overlays, masks, per-frame CSVs and AoP-over-time plots. Used by the CLI and the
web service; every file is written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import (
    ImageData,
    as_gray_uint8,
    iter_video_frames,
    read_any,
    video_info,
    write_mask,
    write_png,
    write_predictions_csv,
)
from .io import file_stem as stem
from .io.datasets import VIDEO_EXTENSIONS
from .io.images import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, MEDICAL_EXTENSIONS
from .predict import Prediction, Predictor
from .viz import draw_overlay

__all__ = [
    "IMAGE_SUFFIXES",
    "ClipResult",
    "MultiFrameError",
    "is_video",
    "iter_file_predictions",
    "measure_clip",
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


@dataclass(frozen=True)
class ClipResult:
    """A measured clip: per-frame CSV, AoP-over-time plot and a summary."""

    source: str
    frames: int
    measurable: int
    aop_median: float
    aop_range: tuple[float, float]
    csv: Path
    plot: Path


def measure_clip(
    predictor: Predictor,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    name: str | None = None,
    data: ImageData | None = None,
    step: int = 1,
    pixel_spacing: tuple[float, float] | None = None,
    **kw,
) -> ClipResult:
    """Measure every ``step``-th frame of a video or multi-frame DICOM; write ``<name>_frames.csv``
    (IUGC 2025 columns, one row per frame named ``<name>_f<frame>``) and ``<name>_aop.png``; ``name``
    defaults to the file's stem. ``data`` is the file's content when it was already read."""
    path, out_dir = Path(path), Path(out_dir)
    name = name or stem(path)
    if is_video(path):
        info = video_info(path)
        fps, frames = info.fps, iter_video_frames(path, step=step)
    else:
        data = data or read_any(path)
        pixels = data.pixels if data.frames > 1 else data.pixels[None]
        fps, frames = math.nan, ((i, pixels[i]) for i in range(0, len(pixels), step))
        pixel_spacing = pixel_spacing or data.pixel_spacing
    rows, index, aop = [], [], []
    for i, pred in predictor.predict_frames(frames, pixel_spacing=pixel_spacing, **kw):
        m = pred.measurement
        rows.append((f"{name}_f{i:05d}", m))
        index.append(i)
        aop.append(m.aop if m.ok else math.nan)
    if not rows:
        raise InputError(path, "no frames to measure")
    csv_path = write_predictions_csv(out_dir / f"{name}_frames.csv", rows)
    plot = _plot_aop(out_dir / f"{name}_aop.png", np.array(index), np.array(aop), fps, path.name)
    ok = np.array(aop)[np.isfinite(aop)]
    return ClipResult(
        source=str(path),
        frames=len(rows),
        measurable=int(ok.size),
        aop_median=float(np.median(ok)) if ok.size else math.nan,
        aop_range=(float(ok.min()), float(ok.max())) if ok.size else (math.nan, math.nan),
        csv=csv_path,
        plot=plot,
    )


def _plot_aop(path: Path, index: np.ndarray, aop: np.ndarray, fps: float, title: str) -> Path:
    from matplotlib.figure import Figure

    from .report import save_figure

    t = index / fps if math.isfinite(fps) else index
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    ax.plot(t, aop, "-o", ms=2.5, lw=1, color="tab:green", label="AoP")
    bad = ~np.isfinite(aop)
    if bad.any():
        lo = np.nanmin(aop) if np.isfinite(aop).any() else 90.0
        ax.plot(t[bad], np.full(bad.sum(), lo), "x", color="tab:red", ms=4, label="not measurable")
    ax.axhline(120, color="0.5", ls="--", lw=0.8, label="120° (Kalache 2009)")
    ax.set_xlabel("time (s)" if math.isfinite(fps) else "frame")
    ax.set_ylabel("AoP (°)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path, dpi=110)


def write_mask_file(folder: Path, name: str, pred: Prediction) -> Path | None:
    """The predicted PS/FH mask as ``<name>_mask.png`` (0/1/2) if the model segments."""
    if pred.label_map is None:
        return None
    return write_mask(folder / f"{name}_mask.png", pred.label_map)
