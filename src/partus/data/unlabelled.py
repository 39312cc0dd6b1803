"""Unlabelled scans for self-supervised pretraining, pseudo-labelling and site adaptation.

Any mix of image files, DICOM/volumes (every frame) and videos (every ``frame_step``-th frame) becomes a
list of :class:`Scan`. A frame remembers the clip it came from (``group``): frames of one sweep are views
of the same anatomy, which contrastive pretraining treats as positives (paper 3's sequence mining) and
which must never be split between training and evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import as_gray_uint8, iter_video_frames, read_any
from ..io.datasets import VIDEO_EXTENSIONS
from ..io.names import frame_key, unique_names

__all__ = ["Scan", "read_scans"]


@dataclass(frozen=True)
class Scan:
    """One unlabelled image: ``name`` (file name, ``clip.mp4#f00012`` for a frame), gray uint8 ``image``,
    and ``group``, the file it came from (all frames of a clip share it)."""

    name: str
    image: np.ndarray
    group: str


def read_scans(
    files: Sequence[str | os.PathLike],
    *,
    frame_step: int = 5,
    on_file: Callable[[Path], None] | None = None,
) -> tuple[list[Scan], list[tuple[str, str]]]:
    """Read ``files`` into scans; unreadable files are skipped and returned as ``(path, reason)``.

    Parameters
    ----------
    files : paths
        Images, DICOM/MHA/NIfTI (every frame of a multi-frame file), videos.
    frame_step : int
        Keep every ``frame_step``-th frame of videos and multi-frame files (consecutive frames of a sweep
        are near-copies; 5 keeps ~5 frames per second of a 25-fps clip).
    on_file : callable, optional
        Called after each file (a progress bar).
    """
    if int(frame_step) < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    paths = [Path(f) for f in files]
    scans: list[Scan] = []
    problems: list[tuple[str, str]] = []
    for path, name in zip(paths, unique_names(paths), strict=True):
        try:
            scans += list(_scans_of(path, name, frame_step))
        except InputError as exc:
            problems.append((str(path), exc.problem))
        if on_file is not None:
            on_file(path)
    return scans, problems


def _scans_of(path: Path, name: str, step: int) -> Iterable[Scan]:
    if path.name.lower().endswith(VIDEO_EXTENSIONS):
        frames = list(iter_video_frames(path, step=step))
        if not frames:
            raise InputError(path, "no frame could be decoded")
        return [Scan(frame_key(name, i), as_gray_uint8(g, str(path)), name) for i, g in frames]
    data = read_any(path)
    if data.frames == 1:
        return [Scan(name, as_gray_uint8(data.pixels, str(path)), name)]
    return [Scan(frame_key(name, i), as_gray_uint8(data.pixels[i], str(path)), name)
            for i in range(0, data.frames, step)]  # fmt: skip
