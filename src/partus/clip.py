"""Clips (videos, multi-frame DICOM, volumes): classify and measure every frame in batches, select the
standard-plane frames, smooth AoP/HSD over time, and summarise the clip (paper 5's task).

Frames stream through the model in batches; only per-frame numbers and the best frame so far are kept, so
memory does not grow with the clip's pixels. A frame is **standard** when the model's plane head gives
P(standard plane) >= ``min_plane`` (0.5 by default: a clip has frames to spare, so selection favours
precision, unlike the verdict's floor for a lone image, ``QualityLimits.min_standard_plane``; models
without a plane head: every frame counts), and **used** when it is standard and its measurement passed
the verdict. AoP and HSD over the used
frames are smoothed with a running median of ``window`` frames (robust to single-frame outliers, no lag
on a steady clip, unlike a mean or a Kalman filter that has to be tuned); the summary gives the median
and interquartile range of the smoothed AoP and the median smoothed HSD. The **best frame** is the used
frame with the highest plane probability (then the lowest landmark disagreement); its overlay is saved.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io import ImageData, file_stem, iter_video_frames, read_any, video_info, write_json, write_predictions_csv
from .io.datasets import VIDEO_EXTENSIONS
from .measurement import Measurement
from .predict import Prediction, Predictor

__all__ = ["ClipSummary", "measure_clip", "running_median"]


@dataclass
class ClipSummary:
    """What a clip gave. ``aop_iqr`` is ``(q1, q3)`` of the smoothed AoP over used frames; ``best_frame`` is
    -1 and ``message`` says why when no frame could be used. Paths are the files written."""

    source: str
    frames: int
    fps: float
    standard_frames: int
    used_frames: int
    aop_median: float
    aop_iqr: tuple[float, float]
    hsd_median: float
    hsd_unit: str
    best_frame: int
    best_aop: float
    message: str
    has_plane_head: bool
    csv: Path | None = None
    plot: Path | None = None
    overlay: Path | None = None
    summary: Path | None = None
    series: dict[str, list] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None, paths as text; the per-frame series included)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        return _nan_to_none(d)


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float):
        return None if not math.isfinite(x) else x
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_nan_to_none(v) for v in x]
    return x


def running_median(values: np.ndarray, window: int = 5) -> np.ndarray:
    """Centred running median of a 1-D series (the window shrinks at the ends); NaN stays NaN and is
    ignored inside windows."""
    v = np.asarray(values, float)
    if window < 1 or window % 2 == 0:
        raise InputError("window", f"must be a positive odd integer, got {window!r}")
    half = window // 2
    out = np.full(v.shape, np.nan)
    for i in np.flatnonzero(np.isfinite(v)):
        seg = v[max(0, i - half) : i + half + 1]
        out[i] = np.median(seg[np.isfinite(seg)])
    return out


def _frames(path: Path, data: ImageData | None, step: int) -> tuple[Iterator[tuple[int, np.ndarray]], float, Any]:
    if str(path).lower().endswith(VIDEO_EXTENSIONS):
        return iter_video_frames(path, step=step), video_info(path).fps, None
    data = data or read_any(path)
    pixels = data.pixels if data.frames > 1 else data.pixels[None]
    return ((i, pixels[i]) for i in range(0, len(pixels), step)), math.nan, data.pixel_spacing


def measure_clip(
    predictor: Predictor,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    name: str | None = None,
    data: ImageData | None = None,
    step: int = 1,
    pixel_spacing: tuple[float, float] | None = None,
    batch_size: int = 16,
    window: int = 5,
    min_plane: float = 0.5,
    progress=None,
    **kw: Any,
) -> ClipSummary:
    """Measure every ``step``-th frame of a clip and write ``<name>_frames.csv`` (a row per frame named
    ``<name>_f<frame>``, with ``standard_plane``), ``<name>_aop.png`` (AoP over time above the plane
    probability), ``<name>_best.png`` (the best frame's overlay) and ``<name>_summary.json``.

    ``data`` is the file's content when it was already read; ``progress(frames_done)`` is called per
    batch; ``kw`` goes to :meth:`Predictor.predict` (orientation, hsd_method).
    """
    path, out_dir = Path(path), Path(out_dir)
    name = name or file_stem(path)
    frames, fps, spacing = _frames(path, data, step)
    floor = max(min_plane, predictor.limits.min_standard_plane)
    rows: list[tuple[str, Measurement]] = []
    index, plane, aop, hsd, used = [], [], [], [], []
    best: tuple[tuple, int, Prediction] | None = None
    hsd_unit = "px"
    for i, pred in predictor.predict_frames(frames, pixel_spacing=pixel_spacing or spacing, batch_size=batch_size,
                                            **kw):  # fmt: skip
        m = pred.measurement
        p = (m.extras or {}).get("standard_plane")
        p = math.nan if p is None else float(p)
        standard = p >= floor if predictor.has_plane else True
        ok = bool(standard and m.ok)
        rows.append((f"{name}_f{i:05d}", m))
        index.append(i)
        plane.append(p)
        used.append(ok)
        aop.append(m.aop if ok else math.nan)
        hsd.append(m.hsd if ok else math.nan)
        hsd_unit = m.hsd_unit or hsd_unit
        if ok:
            spread = (m.extras or {}).get("aop_spread_deg") or 0.0
            rank = (0.0 if math.isnan(p) else p, -spread)
            if best is None or rank > best[0]:
                best = (rank, i, pred)
        if progress is not None and len(rows) % batch_size == 0:
            progress(len(rows))
    if not rows:
        raise InputError(path, "no frames to measure")
    smooth_aop, smooth_hsd = running_median(np.array(aop), window), running_median(np.array(hsd), window)
    ok_aop = smooth_aop[np.isfinite(smooth_aop)]
    ok_hsd = smooth_hsd[np.isfinite(smooth_hsd)]
    standard_n = int(sum(p >= floor for p in plane)) if predictor.has_plane else len(rows)
    if ok_aop.size:
        message = f"{ok_aop.size} of {len(rows)} frames used"
    elif predictor.has_plane and not standard_n:
        message = "no standard-plane frame in the clip (symphysis and head never both in view): nothing measured"
    else:
        message = "no standard-plane frame could be measured (every one was flagged): nothing measured"
    summary = ClipSummary(
        source=str(path), frames=len(rows), fps=fps, standard_frames=standard_n, used_frames=int(ok_aop.size),
        aop_median=float(np.median(ok_aop)) if ok_aop.size else math.nan,
        aop_iqr=tuple(float(q) for q in np.percentile(ok_aop, [25, 75])) if ok_aop.size else (math.nan, math.nan),
        hsd_median=float(np.median(ok_hsd)) if ok_hsd.size else math.nan, hsd_unit=hsd_unit,
        best_frame=-1 if best is None else best[1], best_aop=math.nan if best is None else best[2].measurement.aop,
        message=message, has_plane_head=predictor.has_plane,
        series={"frame": index, "standard_plane": plane, "used": used, "aop": aop, "aop_smoothed": smooth_aop.tolist(),
                "hsd_smoothed": smooth_hsd.tolist()},
    )  # fmt: skip
    summary.csv = write_predictions_csv(out_dir / f"{name}_frames.csv", rows)
    summary.plot = _plot(out_dir / f"{name}_aop.png", summary, path.name, floor)
    if best is not None:
        from .batch import write_overlay

        summary.overlay = write_overlay(out_dir / f"{name}_best.png", best[2], title=f"{path.name} frame {best[1]}")
    summary.summary = out_dir / f"{name}_summary.json"
    write_json(summary.summary, summary.as_dict())
    return summary


def _plot(path: Path, s: ClipSummary, title: str, threshold: float) -> Path:
    from matplotlib.figure import Figure

    from .report import save_figure

    idx = np.array(s.series["frame"], float)
    t = idx / s.fps if math.isfinite(s.fps) else idx
    aop = np.array(s.series["aop"], float)
    fig = Figure(figsize=(8, 4.2))
    ax, bx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(t, aop, "o", ms=2.5, color="tab:green", alpha=0.6, label="AoP, used frames")
    ax.plot(t, s.series["aop_smoothed"], "-", lw=1.4, color="tab:green", label="running median")
    if math.isfinite(s.aop_median):
        ax.axhspan(*s.aop_iqr, color="tab:green", alpha=0.12, label=f"IQR; median {s.aop_median:.1f}°")
    ax.axhline(120, color="0.5", ls="--", lw=0.8, label="120° (Kalache 2009)")
    ax.set_ylabel("AoP (°)")
    ax.set_title(f"{title}: {s.message}", fontsize=9)
    ax.legend(loc="best", fontsize=7)
    plane = np.array(s.series["standard_plane"], float)
    if np.isfinite(plane).any():
        bx.fill_between(t, 0, np.nan_to_num(plane), step="mid", color="tab:blue", alpha=0.35)
        bx.axhline(threshold, color="tab:red", lw=0.8, ls=":")
        bx.set_ylabel("P(standard\nplane)", fontsize=8)
    else:
        bx.fill_between(t, 0, np.array(s.series["used"], float), step="mid", color="tab:blue", alpha=0.35)
        bx.set_ylabel("used", fontsize=8)
    bx.set_ylim(0, 1)
    bx.set_xlabel("time (s)" if math.isfinite(s.fps) else "frame")
    return save_figure(fig, path, dpi=110)
