"""Batch prediction into a durable, resumable output file, on the local engine (this process) or on Ray.

:func:`predict_to_file` lists the inputs as units (:mod:`partus.engine.units`: files, every frame of a
video or multi-frame file its own row), skips what an earlier run committed (``resume``), measures the
rest on the chosen engine and commits rows as they come (:class:`partus.io.journal.RowJournal`); the
output is written in input order when everything is done. Both engines give the same rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.journal import RowJournal
from .units import Unit, list_units, measurement_rows, pending, predict_units, row_order

__all__ = ["ENGINES", "RunStats", "predict_to_file"]

ENGINES = ("local", "ray")


@dataclass
class RunStats:
    """What a run did: rows in the output, rows measured now, rows of unreadable inputs in the output, wall time,
    and per worker (``node:pid``) the rows it measured and its peak resident memory in MiB (Ray only)."""

    rows: int = 0
    measured: int = 0
    unreadable: int = 0
    seconds: float = 0.0
    workers: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.measured / self.seconds if self.seconds > 0 else 0.0


def predict_to_file(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    models: Sequence[str | os.PathLike] | None = None,
    engine: str = "local",
    resume: bool = False,
    batch_size: int = 16,
    workers: int | None = None,
    address: str | None = None,
    tta_flip: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_prediction: Callable[[Unit, str, Any], None] | None = None,
    predictor: Any = None,
    **opts: Any,
) -> RunStats:
    """Measure ``files`` into ``out`` (``.csv`` or ``.parquet``), one row per image or frame.

    Parameters
    ----------
    files : paths
        Images, DICOM, volumes and videos (the caller expands folders).
    out : path
        The output; rows are committed into ``<out>.partial/`` while the run goes on.
    models : paths, optional
        ONNX model(s); default the bundled one.
    engine : {"local", "ray"}
        ``local`` measures in this process; ``ray`` on a Ray Data pipeline (:mod:`.distributed`).
    resume : bool
        Keep what an earlier (killed) run committed and measure only the missing inputs.
    batch_size : int
        Images per ONNX Runtime call.
    workers, address : Ray only
        Model actors (default: one per CPU of the cluster) and the cluster to join (default: start a
        local Ray instance for the job).
    progress : callable(done, total), optional
        Called as rows are committed.
    on_prediction : callable(unit, row name, Prediction or InputError), optional
        Local engine only: sees every prediction (overlays, masks).
    predictor : Predictor, optional
        Already loaded for ``models`` and ``tta_flip`` (the local engine uses it; the Ray engine ships the
        model files).
    opts
        ``orientation``, ``hsd_method``, ``pixel_spacing`` as for :meth:`partus.Predictor.predict`.

    Returns
    -------
    RunStats
    """
    if engine not in ENGINES:
        raise InputError("engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine != "ray" and (workers is not None or address is not None):
        raise InputError("engine", "workers and address are options of the Ray engine (engine='ray')")
    if engine == "ray" and on_prediction is not None:
        raise InputError("engine", "the Ray engine writes rows only (no overlays or masks); use the local engine")
    from ..predict import Predictor

    if engine == "ray":
        from .distributed import import_ray

        import_ray()  # says how to install Ray before anything is read or written
    if predictor is None:  # a bad model fails here, early
        predictor = Predictor(list(models) if models else None, tta_flip=tta_flip)
    units = list_units([Path(f) for f in files])
    t0 = time.perf_counter()
    job = {"model": predictor.id, "tta_flip": tta_flip, **{k: v for k, v in sorted(opts.items())}}
    with RowJournal(out, resume=resume, job=job) as journal:
        todo = pending(units, journal.keys)
        total = sum(u.rows for u in todo)
        stats = RunStats()
        done = 0

        def commit(rows: list[tuple[str, Any]]) -> None:
            nonlocal done
            journal.add(rows)
            stats.measured += len(rows)
            done += len(rows)
            if progress is not None:
                progress(done, max(total, done))

        if engine == "ray":
            from .distributed import run_ray

            run_ray(todo, commit, stats, models=models, workers=workers, address=address, batch_size=batch_size,
                    tta_flip=tta_flip, **opts)  # fmt: skip
        else:
            _run_local(todo, commit, predictor, batch_size=batch_size, on_prediction=on_prediction, **opts)
        stats.rows = len(journal.keys)
        journal.finish(row_order(units))
        stats.unreadable = journal.unreadable
    stats.seconds = time.perf_counter() - t0
    return stats


def _run_local(units: list[Unit], commit, predictor, *, batch_size: int, on_prediction, **opts: Any) -> None:
    for unit, rows in predict_units(predictor, units, batch_size=batch_size, **opts):
        if on_prediction is not None:
            for key, pred in rows:
                on_prediction(unit, key, pred)
        commit(measurement_rows(rows))
