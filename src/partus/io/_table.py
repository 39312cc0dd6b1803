"""Loading small CSV tables with errors that name the file, line and column."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InputError
from ._pixels import read_bytes


@dataclass(frozen=True)
class Table:
    """A CSV file: stripped header names and rows as ``(line number, {column: stripped text})``."""

    source: str
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]

    def columns(
        self, required: Mapping[str, Sequence[str]], optional: Mapping[str, Sequence[str]] | None = None
    ) -> dict[str, str]:
        """Map canonical column names to the header's names, matching names and aliases case-insensitively.

        Raises :class:`InputError` naming missing required columns (and the columns found), or a column
        given twice under two of its names.
        """
        lower = {h.lower(): h for h in self.header}
        found: dict[str, str] = {}
        missing = []
        for name, aliases in {**required, **(optional or {})}.items():
            hits = [lower[a.lower()] for a in (name, *aliases) if a.lower() in lower]
            if len(hits) > 1:
                raise InputError(self.source, f"column {name!r} appears twice, as {' and '.join(map(repr, hits))}")
            if hits:
                found[name] = hits[0]
            elif name in required:
                missing.append(name)
        if missing:
            raise InputError(
                self.source, f"missing column(s) {', '.join(missing)}; found columns: {', '.join(self.header)}"
            )
        return found


def _decode(path: str | os.PathLike) -> str:
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (bad byte at offset {exc.start})") from exc


def load_table(path: str | os.PathLike) -> Table:
    """Read a CSV file (UTF-8, optional BOM, first line = header); blank lines are skipped.

    Raises
    ------
    InputError
        If the file is missing, empty, not UTF-8, malformed CSV, has a blank or repeated column name, or
        a row whose number of cells differs from the header's.
    """
    text = _decode(path)
    if not text.strip():
        raise InputError(path, "file is empty (no header line)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
        if "" in header or len(set(h.lower() for h in header)) != len(header):
            raise InputError(path, f"header has a blank or repeated column name: {header}")
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise InputError(
                    path, f"line {reader.line_num}: expected {len(header)} cells like the header, got {len(cells)}"
                )
            rows.append((reader.line_num, dict(zip(header, (c.strip() for c in cells), strict=True))))
    except csv.Error as exc:
        raise InputError(path, f"malformed CSV near line {reader.line_num}: {exc}") from exc
    return Table(source=str(path), header=header, rows=rows)


def unique_key(table: Table, seen: dict[str, int], key: str, line: int, column: str) -> str:
    """Check that ``key`` (a row's identifier) is non-empty and new; remember its line."""
    if not key:
        raise InputError(table.source, f"line {line}: empty {column!r}")
    if key in seen:
        raise InputError(table.source, f"duplicate {column} {key!r} (lines {seen[key]} and {line})")
    seen[key] = line
    return key
