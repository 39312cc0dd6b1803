"""Durable, resumable prediction output: rows are committed in parts while a job runs, and merged into the
output file (CSV, or Parquet when its name ends in ``.parquet``) when it finishes.

While ``preds.csv`` is being produced, committed rows live in the folder ``preds.csv.partial/``, one file
per commit (``part-000001.csv``...), each written atomically: a job killed at any moment (``SIGKILL``
included) leaves whole parts only, never a partial line. A resumed job reads the parts, skips what they
hold, and adds new parts; the last step writes the output atomically, in the caller's row order, and
removes the folder. A lock file keeps two jobs from writing one output.
"""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._atomic import atomic_path, atomic_write
from .tables import PredictionRow
from .writers import PREDICTION_COLUMNS, _as_row, _cells

try:  # POSIX advisory lock; elsewhere two jobs on one output are not detected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Typed columns of a Parquet output (points split into x and y, full float precision).
PARQUET_COLUMNS = ("Filename", "PS1_x", "PS1_y", "PS2_x", "PS2_y", "FH1_x", "FH1_y", "AOP", "HSD", "HSD_unit",
                   "status", "reason")  # fmt: skip


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("output", 'Parquet output needs pyarrow: pip install "partus[ray]" (or pyarrow)') from None
    return pa, pq


class RowJournal:
    """Committed rows of one output file, kept across kills until the job finishes.

    Parameters
    ----------
    out : path
        The output file: ``.csv`` (IUGC 2025 columns plus measurements, points rounded to 2 decimals) or
        ``.parquet`` (:data:`PARQUET_COLUMNS`, full precision).
    resume : bool
        Keep the rows an earlier, killed job committed (and those of a finished ``out``) and report them in
        :attr:`keys`; otherwise an unfinished earlier job is an error, so that its rows are not lost by
        accident.
    every_rows, every_s : int, float
        :meth:`add` commits a part when this many rows are pending or this many seconds have passed.

    Raises
    ------
    InputError
        If another job holds the output, an unfinished job's rows exist and ``resume`` is false, a part
        cannot be read, or Parquet is asked for without pyarrow.
    """

    def __init__(self, out: str | os.PathLike, *, resume: bool = False, every_rows: int = 256, every_s: float = 5.0):
        self.out = Path(out)
        self.parquet = self.out.name.lower().endswith(".parquet")
        if self.parquet:
            _pyarrow()
        self.folder = self.out.with_name(self.out.name + ".partial")
        self.every_rows, self.every_s = every_rows, every_s
        existed = self.folder.is_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = self._acquire()
        try:
            parts = self._parts()
            if existed and parts and not resume:
                raise InputError(
                    self.folder,
                    f"holds {len(parts)} committed part(s) of an unfinished run into {self.out.name}: "
                    "pass --resume to continue it, or delete the folder to start over",
                )
            if resume and not parts and self.out.is_file():  # a finished output: its rows count as committed
                atomic_write(self.folder / f"part-000000{self._suffix}", self.out.read_bytes())
            elif not resume:
                for p in parts:
                    p.unlink()
            self.keys: set[str] = {k for p in self._parts() for k in self._read_keys(p)}
        except BaseException:
            self.close()
            raise
        self._pending: list[tuple[str, PredictionRow]] = []
        self._last = time.monotonic()

    @property
    def _suffix(self) -> str:
        return ".parquet" if self.parquet else ".csv"

    def _acquire(self):
        fh = open(self.folder / ".lock", "a+b")  # noqa: SIM115 - held until close()
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                raise InputError(self.out, "another partus job is writing this output right now") from None
        return fh

    def close(self) -> None:
        """Release the lock; committed parts stay for a later ``resume`` (a folder without any is removed)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
            if self.folder.is_dir() and not self._parts():
                shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RowJournal:
        return self

    def __exit__(self, *exc: Any) -> None:
        """Commit what is pending (an interrupted or failing job keeps every whole row it had), then close."""
        try:
            if self._lock is not None:
                self.flush()
        except Exception:  # noqa: BLE001 - the job's own error is the one to report
            pass
        finally:
            self.close()

    def _parts(self) -> list[Path]:
        return sorted(p for p in self.folder.glob(f"part-*{self._suffix}") if not p.name.startswith("."))

    # -- committing -----------------------------------------------------------------------------------
    def add(self, rows: Iterable[tuple[str, Any]]) -> None:
        """Queue rows (``(name, Measurement | PredictionRow)``) and commit when enough are pending. Call it
        with whole inputs (every frame of a clip chunk at once): a commit never splits one call's rows."""
        for name, item in rows:
            name = str(name)
            if not name or name in self.keys:
                raise InputError("rows", f"filename {name!r} is {'empty' if not name else 'already committed'}")
            self.keys.add(name)
            self._pending.append((name, _as_row(name, item)))
        if len(self._pending) >= self.every_rows or time.monotonic() - self._last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        """Commit every pending row as one part (atomic: all of them or none survive a kill)."""
        if not self._pending:
            return
        parts = self._parts()
        seq = int(parts[-1].name[5:11]) + 1 if parts else 1
        path = self.folder / f"part-{seq:06d}{self._suffix}"
        if self.parquet:
            pa, pq = _pyarrow()
            with atomic_path(path) as tmp:
                pq.write_table(_arrow_table(pa, self._pending), tmp)
        else:
            atomic_write(path, _csv_text(self._pending))
        self._pending.clear()
        self._last = time.monotonic()

    # -- reading and finishing ------------------------------------------------------------------------
    def _read_keys(self, part: Path) -> list[str]:
        if self.parquet:
            _, pq = _pyarrow()
            return [str(v) for v in pq.read_table(part, columns=["Filename"]).column(0).to_pylist()]
        return [cells[0] for cells in _csv_rows(part)]

    def finish(self, order: Callable[[str], Any] | None = None) -> Path:
        """Commit what is pending, write the output atomically with rows sorted by ``order(name)`` (rows
        ``order`` does not know, i.e. raises ``KeyError`` for, follow in commit order), and remove the
        journal folder. Returns the output path."""
        self.flush()
        parts = self._parts()

        def sort_key(item: tuple[int, str]) -> tuple:
            i, name = item
            try:
                return (0, order(name), i) if order is not None else (0, i)
            except KeyError:
                return (1, i)

        if self.parquet:
            pa, pq = _pyarrow()
            tables = [pq.read_table(p) for p in parts]
            table = pa.concat_tables(tables) if tables else _arrow_table(pa, [])
            names = [str(v) for v in table.column("Filename").to_pylist()]
            idx = [i for i, _ in sorted(enumerate(names), key=sort_key)]
            with atomic_path(self.out) as tmp:
                pq.write_table(table.take(idx), tmp)
        else:
            rows = [cells for p in parts for cells in _csv_rows(p)]
            idx = [i for i, _ in sorted(enumerate(r[0] for r in rows), key=sort_key)]
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(PREDICTION_COLUMNS)
            writer.writerows(rows[i] for i in idx)
            atomic_write(self.out, buffer.getvalue())
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.out


def _csv_text(rows: list[tuple[str, PredictionRow]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    for name, row in rows:
        writer.writerow(_cells(name, row, 2, 6))
    return buffer.getvalue()


def _csv_rows(part: Path) -> Iterator[list[str]]:
    with part.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header) != PREDICTION_COLUMNS:
            raise InputError(part, f"not a partus prediction part (header {header!r})")
        for cells in reader:
            if len(cells) != len(PREDICTION_COLUMNS):
                raise InputError(
                    part, f"line {reader.line_num}: {len(cells)} cells, expected {len(PREDICTION_COLUMNS)}"
                )
            yield cells


def _arrow_table(pa, rows: list[tuple[str, PredictionRow]]):
    cols: dict[str, list] = {c: [] for c in PARQUET_COLUMNS}
    for name, row in rows:
        cols["Filename"].append(name)
        for (x, y), label in zip(row.points, ("PS1", "PS2", "FH1"), strict=True):
            cols[f"{label}_x"].append(float(x))
            cols[f"{label}_y"].append(float(y))
        cols["AOP"].append(float(row.aop))
        cols["HSD"].append(float(row.hsd))
        cols["HSD_unit"].append(row.hsd_unit if math.isfinite(row.hsd) else "")
        cols["status"].append(row.status.value)
        cols["reason"].append(row.reason)
    types = {c: pa.float64() for c in PARQUET_COLUMNS if c.endswith(("_x", "_y")) or c in ("AOP", "HSD")}
    return pa.table({c: pa.array(v, type=types.get(c, pa.string())) for c, v in cols.items()})
