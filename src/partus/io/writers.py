"""Writers: prediction CSVs (IUGC 2025 format plus measurements), JSON and masks. All writes are atomic."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..conventions import BACKGROUND, FH, PS, Status, parse_enum
from ..errors import InputError
from ..measurement import Landmarks, Measurement
from ._atomic import atomic_write
from ._points import format_number, format_point
from .labels import PSFHS_VALUES, LabelScheme
from .medical import MASK_VOLUME_EXTENSIONS, write_mask_mha
from .tables import PredictionRow

#: Columns of a prediction CSV, in order.
PREDICTION_COLUMNS = ("Filename", "PS1", "PS2", "FH1", "AOP", "HSD", "HSD_unit", "status", "reason", "standard_plane")
_MASK_VALUES = {
    LabelScheme.PSFHS: {BACKGROUND: 0, PS: 1, FH: 2},
    LabelScheme.IUGC2024: {BACKGROUND: 0, PS: 7, FH: 8},
}
_VIEW_VALUES = {BACKGROUND: 0, PS: 127, FH: 255}


def _as_row(name: str, item: Any) -> PredictionRow:
    """Normalise one item to a :class:`PredictionRow` (points NaN where missing)."""
    where = f"rows[{name!r}]"
    if isinstance(item, PredictionRow):
        row = item
    elif isinstance(item, Measurement):
        points = np.full((3, 2), np.nan) if item.landmarks is None else item.landmarks.to_array()
        plane = (item.extras or {}).get("standard_plane")
        row = PredictionRow(name, points, item.aop, item.hsd, item.hsd_unit, item.status, item.reason,
                            standard_plane=math.nan if plane is None else float(plane))  # fmt: skip
    else:
        try:
            landmarks = item if isinstance(item, Landmarks) else Landmarks.from_array(item)
        except (TypeError, ValueError) as exc:
            raise InputError(where, f"expected a Measurement, Landmarks or (3, 2) points: {exc}") from None
        row = PredictionRow(name, landmarks.to_array())
    if np.shape(row.points) != (3, 2):
        raise InputError(where, f"points must have shape (3, 2), got {np.shape(row.points)}")
    if row.status == Status.OK and not np.all(np.isfinite(row.points)):
        raise InputError(where, "status is 'ok' but landmarks are missing or not finite")
    return row


def _items(rows: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    if isinstance(rows, Mapping):
        return list(rows.items())
    items = []
    for i, entry in enumerate(rows):
        if not (isinstance(entry, tuple | list) and len(entry) == 2):
            raise InputError("rows", f"item {i}: expected a (filename, measurement) pair, got {entry!r}")
        items.append((entry[0], entry[1]))
    return items


def _cells(name: str, row: PredictionRow, decimals: int, value_decimals: int) -> list[str]:
    def number(v: float) -> str:
        return format_number(v, value_decimals) if math.isfinite(v) else ""

    points = [format_point(x, y, decimals) if math.isfinite(x + y) else "" for x, y in row.points]
    unit = row.hsd_unit if math.isfinite(row.hsd) else ""
    plane = format_number(row.standard_plane, 4) if math.isfinite(row.standard_plane) else ""
    return [name, *points, number(row.aop), number(row.hsd), unit, row.status.value, row.reason, plane]


def write_predictions_csv(
    path: str | os.PathLike,
    rows: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    decimals: int = 2,
    value_decimals: int = 6,
) -> Path:
    """Write predictions in the IUGC 2025 CSV format plus measurement and quality columns.

    Columns: ``Filename,PS1,PS2,FH1,AOP,HSD,HSD_unit,status,reason,standard_plane`` (the last: P(standard
    plane) from a model's plane head, 4 decimals, empty without one). Points are ``"(x, y)"`` rounded to
    ``decimals`` decimals with trailing zeros dropped (``"(146, 31.5)"``); :func:`read_predictions_csv`
    returns exactly ``float(f"{v:.{decimals}f}")``. Missing values (landmarks of a not-measurable row, a
    NaN AoP or HSD) are empty cells; ``HSD_unit`` is empty when HSD is.

    Parameters
    ----------
    path : str or path-like
        Destination CSV (parent folders are created).
    rows : mapping or iterable of (filename, item) pairs
        ``item`` is a :class:`~partus.Measurement`, a :class:`~partus.Landmarks`, a ``(3, 2)`` / ``(6,)``
        array-like of points (rows PS1, PS2, FH1) or a :class:`PredictionRow`.
    decimals : int, default 2
        Decimals of point coordinates.
    value_decimals : int, default 6
        Decimals of AoP and HSD.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If a filename is empty or repeated, an item is not one of the accepted types, points are not a
        ``(3, 2)`` array, or an "ok" row has missing or non-finite points.
    """
    for arg, value in (("decimals", decimals), ("value_decimals", value_decimals)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 12:
            raise InputError(arg, f"must be an integer in 0..12, got {value!r}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    seen: set[str] = set()
    for raw_name, item in _items(rows):
        name = str(raw_name)
        if not name or name in seen:
            raise InputError("rows", f"filename {name!r} is {'empty' if not name else 'repeated'}")
        seen.add(name)
        writer.writerow(_cells(name, _as_row(name, item), decimals, value_decimals))
    return atomic_write(path, buffer.getvalue())


def _jsonable(obj: Any, where: str) -> Any:
    if obj is None or isinstance(obj, str | bool):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {_json_key(k, where): _jsonable(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if callable(getattr(obj, "as_dict", None)):
        return _jsonable(obj.as_dict(), where)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, where)
    raise InputError(where, f"cannot be written as JSON: unsupported type {type(obj).__name__}")


def _json_key(key: Any, where: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return str(int(key))
    raise InputError(where, f"JSON object keys must be strings or integers, got {key!r}")


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as UTF-8 JSON, atomically.

    NaN and infinities become ``null``; NumPy scalars and arrays, paths, tuples, objects with an
    ``as_dict()`` method (:class:`~partus.Measurement`) and dataclasses are converted.

    Raises
    ------
    InputError
        If ``obj`` holds a value of another type (the message gives where), or a key that is not a
        string or integer.
    """
    text = json.dumps(_jsonable(obj, "obj"), indent=indent, ensure_ascii=False, allow_nan=False)
    return atomic_write(path, text + "\n")


def _checked_label_map(label_map: Any) -> np.ndarray:
    arr = np.asarray(label_map)
    if arr.ndim != 2 or arr.size == 0:
        raise InputError("label_map", f"must be a non-empty 2-D array, got shape {arr.shape}")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        raise InputError("label_map", f"must hold integers, got dtype {arr.dtype}")
    found = set(np.unique(arr).tolist())
    if not found <= PSFHS_VALUES:
        raise InputError("label_map", f"values must be partus labels 0, 1, 2; found {sorted(found)}")
    return arr.astype(np.uint8)


def write_mask(
    path: str | os.PathLike,
    label_map: Any,
    *,
    scheme: str | LabelScheme = LabelScheme.PSFHS,
    for_viewing: bool = False,
    spacing: tuple[float, float] | None = None,
) -> Path:
    """Write a partus label map (0 bg, 1 PS, 2 FH) as PNG, or as ``.mha``/``.nii``/``.nii.gz``.

    Parameters
    ----------
    path : str or path-like
        Destination; the extension picks the format.
    label_map : ndarray, shape (H, W), integer
        Values in {0, 1, 2}.
    scheme : {"psfhs", "iugc2024"}, default "psfhs"
        Values written: 0/1/2 (psfhs) or 0/7/8 (IUGC 2024 training masks).
    for_viewing : bool, default False
        Write 0/127/255 instead (PS 127, FH 255), visible in any image viewer. Reading such a file back
        with :func:`read_label_map` tells the classes apart by area (the smaller one is PS).
    spacing : tuple of float (sx, sy), optional
        Millimetres per pixel; only ``.mha``/``.nii`` files can store it.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If ``label_map`` is not a 2-D integer array of 0/1/2, the extension is not supported, or a
        spacing is given for a PNG.
    ValueError
        If ``scheme`` is not "psfhs" or "iugc2024".
    """
    scheme = parse_enum(LabelScheme, scheme, "scheme")
    if scheme == LabelScheme.AUTO:
        raise InputError("scheme", "must be 'psfhs' or 'iugc2024' when writing, got 'auto'")
    arr = _checked_label_map(label_map)
    values = _VIEW_VALUES if for_viewing else _MASK_VALUES[scheme]
    lut = np.zeros(256, np.uint8)
    for label, value in values.items():
        lut[label] = value
    out = lut[arr]
    name = str(path).lower()
    if name.endswith(MASK_VOLUME_EXTENSIONS):
        return write_mask_mha(path, out, spacing)
    if not name.endswith(".png"):
        raise InputError(
            path, f"unsupported mask extension; expected .png or one of {', '.join(MASK_VOLUME_EXTENSIONS)}"
        )
    if spacing is not None:
        raise InputError("spacing", "a PNG mask cannot store a pixel spacing; write .mha to keep it")
    ok, buf = cv2.imencode(".png", out)
    if not ok:
        raise InputError(path, "OpenCV could not encode the mask as PNG")
    return atomic_write(path, buf.tobytes())


def encode_png(image: np.ndarray, source: str | os.PathLike = "image") -> bytes:
    """The PNG bytes of an 8-bit gray or BGR image."""
    import cv2

    ok, buf = cv2.imencode(".png", np.asarray(image))
    if not ok:
        raise InputError(source, "could not encode the image as PNG")
    return buf.tobytes()


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Encode an 8-bit gray or BGR image as PNG and write it atomically (parent folders are created)."""
    return atomic_write(path, encode_png(image, path))


def file_stem(path: str | os.PathLike) -> str:
    """File name without its extension (``.nii.gz`` counts as one)."""
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem
