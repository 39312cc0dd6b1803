"""Reading ultrasound videos (IUGC 2024 ships ``.mp4`` / ``.avi``) frame by frame with OpenCV."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError
from ._pixels import check_file


@dataclass(frozen=True)
class VideoInfo:
    """What a video container reports about itself.

    Attributes
    ----------
    frame_count : int
        Number of frames as stated by the container (counted when it states none); some containers
        only estimate it, so iterate with :func:`iter_video_frames` when the exact number matters.
    fps : float
        Frames per second, ``nan`` when the container does not say.
    width, height : int
        Frame size in pixels.
    """

    frame_count: int
    fps: float
    width: int
    height: int


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    check_file(path)
    cap = cv2.VideoCapture(os.fspath(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(path, "cannot be opened as a video (unsupported codec or not a video file)")
    return cap


def check_step(step: object) -> None:
    """Raise InputError unless ``step`` is a positive integer."""
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise InputError("step", f"must be a positive integer, got {step!r}")


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(frame, code)


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Return frame count, frame rate and frame size of a video file.

    Parameters
    ----------
    path : str or path-like
        The video file.

    Returns
    -------
    VideoInfo

    Raises
    ------
    InputError
        If the file is missing, empty, cannot be opened, or has no decodable frame.
    """
    cap = _open(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(path, "video has no decodable frames")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        if count <= 0:  # the container does not say: count by demuxing (no decoding)
            count = 1
            while cap.grab():
                count += 1
        return VideoInfo(
            frame_count=count,
            fps=fps if math.isfinite(fps) and fps > 0 else math.nan,
            width=int(frame.shape[1]),
            height=int(frame.shape[0]),
        )
    finally:
        cap.release()


def _frames(cap: cv2.VideoCapture, first: np.ndarray, step: int) -> Iterator[tuple[int, np.ndarray]]:
    try:
        yield 0, _gray(first)
        index = 0
        while True:
            for _ in range(step - 1):
                if not cap.grab():
                    return
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            index += step
            yield index, _gray(frame)
    finally:
        cap.release()


def iter_video_frames(path: str | os.PathLike, *, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Iterate over the frames of a video as gray ``uint8`` images.

    The file is opened and its first frame decoded when this function is called, so a bad file raises
    here rather than at the first ``next()``. The video is released when the iterator is exhausted or
    closed.

    Parameters
    ----------
    path : str or path-like
        The video file (any container/codec the installed OpenCV decodes; MJPG ``.avi`` and ``mp4v``
        ``.mp4`` work in opencv-python-headless).
    step : int, default 1
        Yield every ``step``-th frame (frames 0, step, 2*step, ...); skipped frames are not decoded.

    Yields
    ------
    index : int
        The 0-based frame number in the video.
    frame : ndarray, shape (H, W), dtype uint8
        The frame converted to gray by luminance.

    Raises
    ------
    InputError
        If ``step`` is not a positive integer, or the file is missing, empty, cannot be opened, or has no
        decodable frame.
    """
    check_step(step)
    cap = _open(path)
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise InputError(path, "video has no decodable frames")
    return _frames(cap, first, int(step))


def read_video_range(path: str | os.PathLike, start: int, stop: int | None) -> list[tuple[int, np.ndarray]]:
    """Frames ``start`` to ``stop - 1`` (``stop=None``: to the end of the stream) of a video as gray
    ``uint8``, each paired with its index. Reading stops early at the end of the stream or at a frame that
    cannot be decoded (the container's frame count can be wrong): the list is then shorter.

    Raises
    ------
    InputError
        If the range is empty or negative, or the file is missing or cannot be opened as a video.
    """
    if isinstance(start, bool) or start < 0 or (stop is not None and not int(start) < int(stop)):
        raise InputError(path, f"frame range must satisfy 0 <= start < stop, got {start}..{stop}")
    cap = _open(path)
    try:
        if start and not cap.set(cv2.CAP_PROP_POS_FRAMES, float(start)):  # container cannot seek: decode up to it
            for _ in range(start):
                if not cap.grab():
                    return []
        out: list[tuple[int, np.ndarray]] = []
        i = int(start)
        while stop is None or i < stop:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            out.append((i, _gray(frame)))
            i += 1
        return out
    finally:
        cap.release()
