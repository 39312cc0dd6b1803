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
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
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

#: How the reason of an input that could not be read begins (counted by :meth:`RowJournal.finish`).
UNREADABLE = "could not read the file"

#: What produced the rows (model id, options), kept beside the parts; a resume must match it.
JOB_FILE = "job.json"

#: Typed columns of a Parquet output (points split into x and y, full float precision).
PARQUET_COLUMNS = ("Filename", "PS1_x", "PS1_y", "PS2_x", "PS2_y", "FH1_x", "FH1_y", "AOP", "HSD", "HSD_unit",
                   "status", "reason", "standard_plane")  # fmt: skip


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

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        resume: bool = False,
        job: dict[str, Any] | None = None,
        every_rows: int = 256,
        every_s: float = 5.0,
    ):
        self.out = Path(out)
        if self.out.is_dir():
            raise InputError(self.out, "is a folder; give the output file (.csv or .parquet)")
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
            if not resume:
                for p in [*parts, self.folder / JOB_FILE]:
                    p.unlink(missing_ok=True)
            self._check_job(job)
            if resume and not parts and self.out.is_file():  # a finished output: its rows count as committed
                self._read_keys(self.out)  # an output this version cannot merge is refused before it is copied
                atomic_write(self.folder / f"part-{0:08d}{self._suffix}", self.out.read_bytes())
            self.keys: set[str] = {k for p in self._parts() for k in self._read_keys(p)}
        except BaseException:
            self.close()
            raise
        self._pending: list[tuple[str, PredictionRow]] = []
        self._last = time.monotonic()
        self.unreadable = 0

    def _check_job(self, job: dict[str, Any] | None) -> None:
        """Record what produces the rows (model, options) and refuse to mix rows of another job."""
        if job is None:
            return
        path = self.folder / JOB_FILE
        wanted = json.loads(json.dumps(job, default=str))
        if path.is_file():
            try:
                had = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                had = None
            if had is not None and had != wanted:
                diff = ", ".join(
                    f"{k}: {had.get(k)!r} then, {wanted.get(k)!r} now" for k in wanted if had.get(k) != wanted.get(k)
                )
                raise InputError(self.folder, f"was started with other settings ({diff}); resume with the same "
                                 "model and options, or delete the folder to start over")  # fmt: skip
        atomic_write(path, json.dumps(wanted, indent=1, sort_keys=True))

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

    def close(self, *, remove: bool = False) -> None:
        """Release the lock; committed parts stay for a later ``resume``. The folder is removed (while the
        lock is still held, so that no other job can take it over half-deleted) when ``remove`` is set or it
        holds no part."""
        if self._lock is None:
            return
        try:
            if self.folder.is_dir() and (remove or not self._parts()):
                for p in self.folder.iterdir():  # the lock file last
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    elif p.name != ".lock":
                        p.unlink(missing_ok=True)
                (self.folder / ".lock").unlink(missing_ok=True)
                with suppress(OSError):
                    self.folder.rmdir()
        finally:
            self._lock.close()
            self._lock = None

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
        """Committed parts in commit order (numbered ``part-00000001``...)."""
        parts = [p for p in self.folder.glob(f"part-*{self._suffix}") if p.name[5 : -len(self._suffix)].isdigit()]
        return sorted(parts, key=lambda p: int(p.name[5 : -len(self._suffix)]))

    # -- committing -----------------------------------------------------------------------------------
    def add(self, rows: Iterable[tuple[str, Any]]) -> None:
        """Queue rows (``(name, Measurement | PredictionRow)``) and commit when enough are pending. Call it
        with whole inputs (every frame of a clip chunk at once): one call's rows are queued all together
        (or, if one is invalid, none of them), and a commit never splits them."""
        new: list[tuple[str, PredictionRow]] = []
        names: set[str] = set()
        for name, item in rows:
            name = str(name)
            if not name or name in self.keys or name in names:
                raise InputError("rows", f"filename {name!r} is {'empty' if not name else 'already committed'}")
            names.add(name)
            new.append((name, _as_row(name, item)))
        self._pending.extend(new)  # one step: an interruption leaves all or none of them pending
        self.keys |= names
        if len(self._pending) >= self.every_rows or time.monotonic() - self._last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        """Commit every pending row as one part (atomic: all of them or none survive a kill)."""
        if not self._pending:
            return
        parts = self._parts()
        seq = int(parts[-1].name[5 : -len(self._suffix)]) + 1 if parts else 1
        path = self.folder / f"part-{seq:08d}{self._suffix}"
        if self.parquet:
            pa, _ = _pyarrow()
            _write_parquet(path, _arrow_table(pa, self._pending))
        else:
            atomic_write(path, _csv_text(self._pending))
        self._pending.clear()
        self._last = time.monotonic()

    # -- reading and finishing ------------------------------------------------------------------------
    def _read_keys(self, part: Path) -> list[str]:
        if self.parquet:
            return [str(v) for v in _read_parquet(part, columns=["Filename"]).column(0).to_pylist()]
        return [cells[0] for cells in _csv_rows(part)]

    def finish(self, order: Callable[[str], Any] | None = None) -> Path:
        """Commit what is pending, write the output atomically with rows sorted by ``order(name)`` (rows
        ``order`` does not know, i.e. raises ``KeyError`` for, follow in commit order), and remove the
        journal folder. Returns the output path; ``self.unreadable`` is then the number of rows, in the whole
        output, of inputs that could not be read."""
        self.flush()
        parts = self._parts()

        def sort_key(item: tuple[int, str]) -> tuple:
            i, name = item
            try:
                return (0, order(name), i) if order is not None else (0, i)
            except KeyError:
                return (1, i)

        if self.parquet:
            pa, _ = _pyarrow()
            tables = [_read_parquet(p) for p in parts]
            table = pa.concat_tables(tables) if tables else _arrow_table(pa, [])
            names = [str(v) for v in table.column("Filename").to_pylist()]
            idx = [i for i, _ in sorted(enumerate(names), key=sort_key)]
            _write_parquet(self.out, table.take(idx))
            reasons = [str(v) for v in table.column("reason").to_pylist()]
        else:
            rows = [cells for p in parts for cells in _csv_rows(p)]
            idx = [i for i, _ in sorted(enumerate(r[0] for r in rows), key=sort_key)]
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(PREDICTION_COLUMNS)
            writer.writerows(rows[i] for i in idx)
            atomic_write(self.out, buffer.getvalue())
            reasons = [r[PREDICTION_COLUMNS.index("reason")] for r in rows]
        self.unreadable = sum(r.startswith(UNREADABLE) for r in reasons)
        self.close(remove=True)
        return self.out


def _csv_text(rows: list[tuple[str, PredictionRow]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    for name, row in rows:
        writer.writerow(_cells(name, row, 2, 6))
    return buffer.getvalue()


def _write_parquet(path: Path, table) -> None:
    _, pq = _pyarrow()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())


def _read_parquet(path: Path, columns: list[str] | None = None):
    pa, pq = _pyarrow()
    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"not a readable Parquet part: {exc}") from None
    if columns is None and tuple(table.column_names) != PARQUET_COLUMNS:
        raise InputError(path, f"not a partus prediction table (columns {table.column_names})")
    return table


def _csv_rows(part: Path) -> Iterator[list[str]]:
    with part.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header) != PREDICTION_COLUMNS:
            raise InputError(part, f"not a partus prediction table of this version (header {header!r}); "
                             "move it away to start over")  # fmt: skip
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
        cols["standard_plane"].append(float(row.standard_plane))
    floats = ("AOP", "HSD", "standard_plane")
    types = {c: pa.float64() for c in PARQUET_COLUMNS if c.endswith(("_x", "_y")) or c in floats}
    return pa.table({c: pa.array(v, type=types.get(c, pa.string())) for c, v in cols.items()})
