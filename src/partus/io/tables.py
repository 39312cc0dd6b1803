"""Readers of the IUGC 2025 landmark / prediction CSVs, the AoP CSV and the psfhs-dev manifest.

IUGC 2025 CSVs have columns ``Filename,PS1,PS2,FH1`` with points written ``"(x, y)"``; the validation
release names the FH1 column ``AOP Tangency``. Predictions written by :func:`partus.io.write_predictions_csv`
add ``AOP``, ``HSD``, ``HSD_unit``, ``status`` and ``reason``. Column names match case-insensitively.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..conventions import LANDMARKS, Status
from ..errors import InputError
from ..measurement import Landmarks, Measurement
from ._points import parse_number, parse_point
from ._table import Table, load_table, unique_key

#: Accepted alternative names of the point columns.
POINT_ALIASES: dict[str, tuple[str, ...]] = {"PS1": (), "PS2": (), "FH1": ("AOP Tangency",)}
_OPTIONAL = {"AOP": (), "HSD": (), "HSD_unit": (), "status": (), "reason": (), "standard_plane": ()}


@dataclass(frozen=True)
class PredictionRow:
    """One row of a landmark / prediction CSV.

    Attributes
    ----------
    filename : str
        The ``Filename`` cell.
    points : ndarray, shape (3, 2), float
        ``(x, y)`` of PS1, PS2, FH1; ``NaN`` for a point left empty in a "not measurable" row.
    aop, hsd : float
        The ``AOP`` (degrees) and ``HSD`` cells; ``NaN`` when the column is absent or the cell empty.
    hsd_unit : str
        ``"px"`` or ``"mm"``; ``""`` when absent.
    status : Status
        ``ok`` unless the ``status`` column says ``not measurable``.
    reason : str
        Why a row is not measurable (``""`` otherwise or when absent).
    standard_plane : float
        P(standard plane) from a model's plane head; ``NaN`` when absent.
    extras : dict of str to str
        Every other column, as text.
    """

    filename: str
    points: np.ndarray
    aop: float = math.nan
    hsd: float = math.nan
    hsd_unit: str = ""
    status: Status = Status.OK
    reason: str = ""
    extras: dict[str, str] = field(default_factory=dict)
    standard_plane: float = math.nan

    def to_measurement(self) -> Measurement:
        """Return the row as a :class:`~partus.Measurement` (landmarks ``None`` if any point is missing)."""
        finite = bool(np.all(np.isfinite(self.points)))
        return Measurement(
            landmarks=Landmarks.from_array(self.points) if finite else None,
            aop=self.aop,
            hsd=self.hsd,
            hsd_unit=self.hsd_unit or "px",
            status=self.status,
            reason=self.reason,
        )


def _cell_error(table: Table, line: int, column: str, problem: str) -> InputError:
    return InputError(table.source, f"line {line}, column {column!r}: {problem}")


def _status(table: Table, line: int, column: str | None, row: dict[str, str]) -> Status:
    if column is None:
        return Status.OK
    text = row[column].lower()
    try:
        return Status(text)
    except ValueError:
        valid = ", ".join(repr(s.value) for s in Status)
        raise _cell_error(table, line, column, f"status must be one of {valid}, got {row[column]!r}") from None


def _points(table: Table, line: int, cols: dict[str, str], row: dict[str, str], measurable: bool) -> np.ndarray:
    points = np.full((3, 2), np.nan)
    for i, name in enumerate(LANDMARKS):
        text = row[cols[name]]
        if not text:
            if measurable:
                raise _cell_error(table, line, cols[name], "empty point (allowed only when status is 'not measurable')")
            continue
        try:
            points[i] = parse_point(text)
        except ValueError as exc:
            raise _cell_error(table, line, cols[name], str(exc)) from None
    return points


def _number(table: Table, line: int, column: str | None, row: dict[str, str]) -> float:
    if column is None or not row[column]:
        return math.nan
    try:
        return parse_number(row[column])
    except ValueError as exc:
        raise _cell_error(table, line, column, str(exc)) from None


def read_predictions_csv(path: str | os.PathLike) -> dict[str, PredictionRow]:
    """Read an IUGC 2025 landmark CSV or a partus prediction CSV, keeping every column.

    Parameters
    ----------
    path : str or path-like
        CSV with columns ``Filename``, ``PS1``, ``PS2``, ``FH1`` (or ``AOP Tangency``) and optionally
        ``AOP``, ``HSD``, ``HSD_unit``, ``status``, ``reason``, ``standard_plane`` and any others (kept as text in
        ``extras``). Point cells may be empty only in rows whose status is ``not measurable``; ``AOP``
        and ``HSD`` cells may be empty in any row.

    Returns
    -------
    dict of str to PredictionRow
        Keyed by filename, in file order.

    Raises
    ------
    InputError
        If the file is missing or empty, a required column is missing (the message lists the columns
        found), a point or number cannot be parsed or is not finite (the message gives line, column and
        text), a status is unknown, or a filename is empty or repeated.
    """
    table = load_table(path)
    cols = table.columns({"Filename": (), **POINT_ALIASES}, _OPTIONAL)
    known = set(cols.values())
    result: dict[str, PredictionRow] = {}
    seen: dict[str, int] = {}
    for line, row in table.rows:
        name = unique_key(table, seen, row[cols["Filename"]], line, "Filename")
        status = _status(table, line, cols.get("status"), row)
        result[name] = PredictionRow(
            filename=name,
            points=_points(table, line, cols, row, status == Status.OK),
            aop=_number(table, line, cols.get("AOP"), row),
            hsd=_number(table, line, cols.get("HSD"), row),
            hsd_unit=row[cols["HSD_unit"]] if "HSD_unit" in cols else "",
            status=status,
            reason=row[cols["reason"]] if "reason" in cols else "",
            extras={k: v for k, v in row.items() if k not in known},
            standard_plane=_number(table, line, cols.get("standard_plane"), row),
        )
    return result


def read_landmarks_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the landmarks of an IUGC 2025 CSV (``Filename,PS1,PS2,FH1``, points ``"(x, y)"``).

    The FH1 column may be named ``AOP Tangency``. Other columns are allowed and ignored here (use
    :func:`read_predictions_csv` to get them). Same validation as :func:`read_predictions_csv`.

    Returns
    -------
    dict of str to ndarray, shape (3, 2), float
        Filename to ``(x, y)`` rows PS1, PS2, FH1 (``NaN`` only for empty points of "not measurable"
        rows of a prediction file).

    Raises
    ------
    InputError
        See :func:`read_predictions_csv`.
    """
    return {name: row.points for name, row in read_predictions_csv(path).items()}


def read_aop_csv(path: str | os.PathLike) -> dict[str, float]:
    """Read an IUGC 2025 ``Filename,AOP`` file into ``{filename: AoP in degrees}``.

    Raises
    ------
    InputError
        If the file is missing or empty, a column is missing, an AoP is empty, unparseable or not
        finite, or a filename is empty or repeated.
    """
    table = load_table(path)
    cols = table.columns({"Filename": (), "AOP": ()})
    result: dict[str, float] = {}
    seen: dict[str, int] = {}
    for line, row in table.rows:
        name = unique_key(table, seen, row[cols["Filename"]], line, "Filename")
        if not row[cols["AOP"]]:
            raise _cell_error(table, line, cols["AOP"], "empty AoP")
        result[name] = _number(table, line, cols["AOP"], row)
    return result


def read_manifest(path: str | os.PathLike) -> dict[str, str]:
    """Read the psfhs-dev ``manifest.csv`` into ``{id: near_dup_cluster}``.

    Frames of one video share a cluster: split train/validation by cluster, never by id.

    Raises
    ------
    InputError
        If the file is missing or empty, the ``id`` or ``near_dup_cluster`` column is missing, a cluster
        is empty, or an id is empty or repeated.
    """
    table = load_table(path)
    cols = table.columns({"id": (), "near_dup_cluster": ()})
    result: dict[str, str] = {}
    seen: dict[str, int] = {}
    for line, row in table.rows:
        key = unique_key(table, seen, row[cols["id"]], line, "id")
        if not row[cols["near_dup_cluster"]]:
            raise _cell_error(table, line, cols["near_dup_cluster"], "empty cluster")
        result[key] = row[cols["near_dup_cluster"]]
    return result
