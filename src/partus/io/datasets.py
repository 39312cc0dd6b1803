"""Dataset layouts: PSFHS / FH-PS-AoP 2023 folders and IUGC 2024 landmarks, names and videos."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conventions import IUGC2024_FRAME_CLASSES
from ..errors import InputError
from ._pixels import read_bytes
from .tables import read_manifest
from .video import check_step, iter_video_frames

#: PSFHS layouts: name -> (image folder, label folder, extension).
PSFHS_LAYOUTS: dict[str, tuple[str, str, str]] = {
    "png": ("images", "labels", ".png"),
    "mha": ("image_mha", "label_mha", ".mha"),
}
VIDEO_EXTENSIONS = (".mp4", ".avi")
_IUGC2024_NAME = re.compile(r"^(?P<video>.+)_(?P<frame>\d+)_(?P<cls>\d+)$")


@dataclass(frozen=True)
class Sample:
    """One image of a dataset, with its mask and the group that must not be split across folds.

    Attributes
    ----------
    id : str
        File stem, e.g. ``"03744"``.
    image_path : pathlib.Path
    label_path : pathlib.Path or None
        ``None`` when the dataset has no mask for this image (only with ``require_labels=False``).
    group : str or None
        ``near_dup_cluster`` from the manifest (frames of one video share it), ``None`` without manifest.
    """

    id: str
    image_path: Path
    label_path: Path | None
    group: str | None


def _pick_layout(root: Path, layout: str) -> tuple[str, str, str]:
    if layout != "auto":
        if layout not in PSFHS_LAYOUTS:
            raise InputError("layout", f"must be 'auto', 'png' or 'mha', got {layout!r}")
        return PSFHS_LAYOUTS[layout]
    for dirs in PSFHS_LAYOUTS.values():
        if (root / dirs[0]).is_dir():
            return dirs
    raise InputError(
        root, "no PSFHS layout found: expected images/ + labels/ (psfhs-dev) or image_mha/ + label_mha/ (original)"
    )


def _by_id(folder: Path, ext: str) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.name[: -len(ext)]: p for p in sorted(folder.iterdir()) if p.name.lower().endswith(ext) and p.is_file()}


def _listing(ids: set[str]) -> str:
    shown = sorted(ids)[:5]
    return ", ".join(shown) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def read_psfhs(
    root: str | os.PathLike,
    *,
    layout: str = "auto",
    require_labels: bool = True,
    manifest: str | os.PathLike | None = None,
) -> list[Sample]:
    """List the samples of a PSFHS / FH-PS-AoP 2023 folder.

    Parameters
    ----------
    root : str or path-like
        A folder holding ``images/<id>.png`` + ``labels/<id>.png`` (psfhs-dev layout) or
        ``image_mha/<id>.mha`` + ``label_mha/<id>.mha`` (original release layout).
    layout : {"auto", "png", "mha"}, default "auto"
        ``auto`` takes the png layout when ``images/`` exists, else the mha layout.
    require_labels : bool, default True
        Raise when an image has no mask; with False such samples get ``label_path=None``.
    manifest : str or path-like, optional
        The manifest giving each id's group; default ``root/manifest.csv`` when it exists.

    Returns
    -------
    list of Sample
        Sorted by id. Load pixels with :func:`partus.io.read_any` and masks with
        :func:`partus.io.read_label_map`.

    Raises
    ------
    InputError
        If ``root`` is not a folder, no layout or no image is found, a mask has no image, an image has no
        mask (with ``require_labels``), or the manifest lacks some ids.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise InputError(root, "not a directory")
    image_dir, label_dir, ext = _pick_layout(folder, layout)
    images, labels = _by_id(folder / image_dir, ext), _by_id(folder / label_dir, ext)
    if not images:
        raise InputError(root, f"no *{ext} files in {image_dir}/")
    if orphans := set(labels) - set(images):
        raise InputError(root, f"masks without an image in {label_dir}/: {_listing(orphans)}")
    if require_labels and (missing := set(images) - set(labels)):
        raise InputError(root, f"images without a mask in {label_dir}/: {_listing(missing)}")
    manifest_path = Path(manifest) if manifest is not None else folder / "manifest.csv"
    groups: dict[str, str] = {}
    if manifest is not None or manifest_path.is_file():
        groups = read_manifest(manifest_path)
        if absent := set(images) - set(groups):
            raise InputError(manifest_path, f"ids missing from the manifest: {_listing(absent)}")
    return [Sample(i, images[i], labels.get(i), groups.get(i)) for i in sorted(images)]


def _yx_point(path: str | os.PathLike, key: str, field: str, value: object) -> np.ndarray:
    """Parse one IUGC 2024 ``[y, x]`` pair (strings or numbers) into an ``(x, y)`` float array."""
    try:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError
        y, x = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(path, f"entry {key!r}, {field!r}: expected a [y, x] pair of numbers, got {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError(path, f"entry {key!r}, {field!r}: non-finite coordinate in {value!r}")
    return np.array([x, y])


def _optional_number(path: str | os.PathLike, key: str, field: str, value: object) -> float:
    if value is None:
        return math.nan
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(path, f"entry {key!r}, {field!r}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(path, f"entry {key!r}, {field!r}: non-finite number {value!r}")
    return number


def _iugc2024_entry(path: str | os.PathLike, key: str, entry: object) -> dict:
    if not isinstance(entry, dict):
        raise InputError(path, f"entry {key!r}: expected an object, got {type(entry).__name__}")
    for field in ("ps_points", "aop_tangency"):
        if field not in entry:
            raise InputError(path, f"entry {key!r}: missing {field!r}; found keys {sorted(entry)}")
    ps = entry["ps_points"]
    if not isinstance(ps, list) or len(ps) != 2:
        raise InputError(path, f"entry {key!r}, 'ps_points': expected 2 [y, x] points, got {ps!r}")
    ps2, ps1 = (_yx_point(path, key, "ps_points", p) for p in ps)
    hsd_point = entry.get("hsd_point")
    return {
        "landmarks": np.stack([ps1, ps2, _yx_point(path, key, "aop_tangency", entry["aop_tangency"])]),
        "hsd_point": None if hsd_point is None else _yx_point(path, key, "hsd_point", hsd_point),
        "aop": _optional_number(path, key, "aop", entry.get("aop")),
        "hsd": _optional_number(path, key, "hsd", entry.get("hsd")),
    }


def read_iugc2024_landmarks(path: str | os.PathLike) -> dict[str, dict]:
    """Read an IUGC 2024 ``landmark.json`` (points stored as ``[y, x]`` strings).

    ``ps_points[1]`` is the AoP vertex PS1 and ``ps_points[0]`` is PS2; ``aop_tangency`` is FH1. Keys
    starting with ``_`` (comments, provenance) are ignored.

    Parameters
    ----------
    path : str or path-like
        The JSON file: ``{filename: {"ps_points": [[y, x], [y, x]], "aop_tangency": [y, x],
        "hsd_point": [y, x], "aop": deg, "hsd": px}}``.

    Returns
    -------
    dict of str to dict
        Filename to ``{"landmarks": ndarray (3, 2) (x, y) rows PS1, PS2, FH1, "hsd_point": ndarray (2,)
        (x, y) or None, "aop": float, "hsd": float}`` (``NaN`` for an absent number).

    Raises
    ------
    InputError
        If the file is missing, empty or not JSON, or an entry lacks ``ps_points``/``aop_tangency`` or has
        a malformed or non-finite point or number (the message names the entry and the field).
    """
    try:
        data = json.loads(read_bytes(path).decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(path, f"expected a JSON object keyed by filename, got {type(data).__name__}")
    return {key: _iugc2024_entry(path, key, entry) for key, entry in data.items() if not key.startswith("_")}


def parse_iugc2024_name(name: str | os.PathLike) -> tuple[str, int, int]:
    """Split an IUGC 2024 frame name ``<video>_<frame>_<class>.png`` into ``(video, frame, class)``.

    The class is a JNU-IFM frame class (3 none, 4 PS only, 5 head only, 6 standard plane). Group folds
    by ``video``: its frames are near-duplicates.

    Raises
    ------
    InputError
        If the name does not have that form or the class is unknown.

    Examples
    --------
    >>> parse_iugc2024_name("20190909T155747I1_0_6.png")
    ('20190909T155747I1', 0, 6)
    """
    stem = Path(name).name.rsplit(".", 1)[0]
    match = _IUGC2024_NAME.match(stem)
    if match is None:
        raise InputError(name, "not an IUGC 2024 frame name; expected <video>_<frame>_<class>")
    frame_class = int(match["cls"])
    if frame_class not in IUGC2024_FRAME_CLASSES:
        raise InputError(name, f"unknown frame class {frame_class}; expected one of {sorted(IUGC2024_FRAME_CLASSES)}")
    return match["video"], int(match["frame"]), frame_class


def list_videos(root: str | os.PathLike, *, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> list[Path]:
    """Return the video files under ``root`` (recursively), sorted; raise InputError if there are none."""
    folder = Path(root)
    if not folder.is_dir():
        raise InputError(root, "not a directory")
    exts = tuple(e.lower() for e in extensions)
    videos = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    if not videos:
        raise InputError(root, f"no video files ({', '.join(exts)}) found")
    return videos


def iter_iugc2024_frames(root: str | os.PathLike, *, step: int = 1) -> Iterator[tuple[str, int, np.ndarray]]:
    """Iterate over the frames of every ``.mp4``/``.avi`` video under ``root``.

    Yields
    ------
    video : str
        The video's file stem.
    index : int
        0-based frame number in that video.
    frame : ndarray, shape (H, W), dtype uint8
        Gray frame (see :func:`partus.io.iter_video_frames`).

    Raises
    ------
    InputError
        If ``step`` is not a positive integer or ``root`` holds no video (both raised here), or a video
        cannot be read (raised when the iteration reaches it).
    """
    check_step(step)
    return _frames_of(list_videos(root), step)


def _frames_of(videos: list[Path], step: int) -> Iterator[tuple[str, int, np.ndarray]]:
    for video in videos:
        for index, frame in iter_video_frames(video, step=step):
            yield video.stem, index, frame
