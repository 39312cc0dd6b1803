"""Work units of a batch prediction run, shared by the local and the Ray engine so that both produce the
same rows under the same names.

A unit is one input file, or a chunk of consecutive frames of a video. Rows are named after the file
(``scan.png``; the full path when two inputs share a name); every frame of a video or multi-frame file
is its own row, ``<name>#f<frame>`` (``clip.mp4#f00012``). A unit's rows are always committed together,
so a resumed run can tell a finished unit by one name (:meth:`Unit.markers`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import as_gray_uint8, read_any, read_video_range, video_info
from ..io.datasets import VIDEO_EXTENSIONS
from ..io.journal import UNREADABLE
from ..io.names import frame_key, unique_names
from ..measurement import Measurement
from ..predict import Prediction, Predictor

#: Frames of a video per unit: a committed chunk is never re-measured by a resumed run.
VIDEO_CHUNK = 32


@dataclass(frozen=True)
class Unit:
    """One file (``start == -1``) or frames ``start..stop-1`` of a video (``stop == -1``: to the end of the
    stream, the video's last chunk); ``problem`` is why the file could not even be listed (its row says
    so). ``path`` is the input as given (it appears in messages); ``where``, when set, is where to open it
    (an absolute path for workers on other machines)."""

    path: str
    name: str
    start: int = -1
    stop: int = -1
    problem: str = ""
    where: str = ""

    @property
    def rows(self) -> int:
        """Rows the unit is expected to give (a multi-frame file or a video's last chunk counts as stated
        by its header, or 1, until read)."""
        return self.stop - self.start if self.start >= 0 and self.stop > self.start else 1

    def markers(self) -> tuple[str, ...]:
        """Row names any one of which, once committed, means the whole unit is (a file that could not be
        listed has one row under its own name, which stands for all its chunks)."""
        if self.start >= 0:
            return (frame_key(self.name, self.start), self.name)
        return (self.name, frame_key(self.name, 0))


def list_units(files: Sequence[Path], *, chunk: int = VIDEO_CHUNK) -> list[Unit]:
    """The units of some input files, in order (a file given twice counts once): videos are split into
    chunks of ``chunk`` frames by the frame count of their container, the last chunk reading to the end of
    the stream; every other file is one unit."""
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = Path(os.path.abspath(f))
        if key not in seen:
            seen.add(key)
            unique.append(Path(f))
    units = []
    for path, name in zip(unique, unique_names(unique), strict=True):
        if not str(path).lower().endswith(VIDEO_EXTENSIONS):
            units.append(Unit(str(path), name))
            continue
        try:
            count = video_info(path).frame_count
        except InputError as exc:
            units.append(Unit(str(path), name, problem=exc.problem))
            continue
        starts = list(range(0, max(count, 1), chunk))
        units += [Unit(str(path), name, s, s + chunk if s != starts[-1] else -1) for s in starts]
    return units


def pending(units: Iterable[Unit], done: set[str]) -> list[Unit]:
    """The units none of whose markers is in ``done`` (the names already committed)."""
    return [u for u in units if not any(m in done for m in u.markers())]


def row_order(units: Sequence[Unit]):
    """A sort key of row names in input order (``KeyError`` for a name that is not of these units)."""
    rank = {u.name: i for i, u in enumerate(units)}

    def order(key: str) -> tuple[int, int]:
        if key in rank:
            return rank[key], -1
        name, sep, frame = key.rpartition("#f")
        if not sep or name not in rank or not frame.isdigit():
            raise KeyError(key)
        return rank[name], int(frame)

    return order


Item = tuple[str, "np.ndarray | InputError", "tuple[float, float] | None"]


def read_unit(unit: Unit) -> list[Item]:
    """The images of a unit as ``(row name, gray uint8 pixels or the InputError, pixel spacing)``."""
    where = unit.where or unit.path
    if unit.problem:
        return [(unit.name, InputError(unit.path, unit.problem), None)]
    try:
        if unit.start >= 0:
            frames = read_video_range(where, unit.start, None if unit.stop < 0 else unit.stop)
            items: list[Item] = [(frame_key(unit.name, i), g, None) for i, g in frames]
            end = unit.start + len(frames)
            if unit.stop >= 0 and end < unit.stop:  # not the last chunk, yet the stream ended or broke here
                items.append((frame_key(unit.name, end), InputError(unit.path, f"frame {end} cannot be decoded "
                              "(damaged video, or fewer frames than its container states)"), None))  # fmt: skip
            return items
        data = read_any(where)
        if data.frames == 1:
            return [(unit.name, as_gray_uint8(data.pixels, unit.path), data.pixel_spacing)]
        return [
            (frame_key(unit.name, i), as_gray_uint8(f, unit.path), data.pixel_spacing)
            for i, f in enumerate(data.pixels)
        ]
    except InputError as exc:
        return [(unit.name if unit.start < 0 else frame_key(unit.name, unit.start), _as_given(exc, unit), None)]
    except Exception as exc:  # noqa: BLE001 - a reader library failing in an unforeseen way: report, go on
        problem = f"could not be read: {type(exc).__name__}: {exc}"
        return [(unit.name if unit.start < 0 else frame_key(unit.name, unit.start),
                 _as_given(InputError(unit.path, problem), unit), None)]  # fmt: skip


def _as_given(exc: InputError, unit: Unit) -> InputError:
    """The error with the path where the file was opened replaced by the path as given (the same message
    on every engine and machine)."""
    if not unit.where or unit.where == unit.path:
        return exc
    return InputError(unit.path, exc.problem.replace(unit.where, unit.path))


def unreadable(exc: InputError) -> Measurement:
    """The row of an input that could not be read."""
    return Measurement.not_measurable(f"{UNREADABLE}: {exc.problem}")


def predict_units(
    predictor: Predictor, units: Sequence[Unit], *, batch_size: int = 16, pixel_spacing=None, **kw: Any
) -> Iterator[tuple[Unit, list[tuple[str, Prediction | InputError]]]]:
    """Read and predict units; yields each unit with its rows (a prediction, or the InputError of an
    image that could not be read), in order, once all of them are known. ``pixel_spacing`` overrides
    the files'; ``kw`` goes to :meth:`Predictor.predict`."""
    queue: list[tuple[Unit, list[Item]]] = []
    images = 0

    def flush() -> Iterator[tuple[Unit, list[tuple[str, Prediction | InputError]]]]:
        todo = [(k, g, s) for _, items in queue for k, g, s in items if not isinstance(g, InputError)]
        preds = iter(predictor.predict([g for _, g, _ in todo], pixel_spacing=[pixel_spacing or s for *_, s in todo],
                                       batch_size=batch_size, **kw)) if todo else iter(())  # fmt: skip
        for unit, items in queue:
            yield unit, [(k, g if isinstance(g, InputError) else next(preds)) for k, g, _ in items]
        queue.clear()

    for unit in units:
        items = read_unit(unit)
        queue.append((unit, items))
        images += len(items)
        if images >= batch_size:
            yield from flush()
            images = 0
    if queue:
        yield from flush()


def measurement_rows(rows: list[tuple[str, Prediction | InputError]]) -> list[tuple[str, Measurement]]:
    """``(name, Measurement)`` rows of a unit's predictions (unreadable inputs as not measurable)."""
    return [(k, unreadable(p) if isinstance(p, InputError) else p.measurement) for k, p in rows]
