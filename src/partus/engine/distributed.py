"""The Ray engine: a Ray Data pipeline over work units, ONNX Runtime in stateful actors.

units (one row each: file, or a chunk of video frames) → ``map_batches`` on a fixed pool of actors, each
loading the model once (the model bytes travel with the job, so cluster nodes need no copy of the file)
with one ONNX Runtime thread, so that workers, not threads, carry the parallelism → rows streamed back to
the driver, which commits a unit's rows once all of them have arrived (a kill never leaves half a unit).

Without an address a local Ray instance is started for the job and stopped after it; with one (``auto``,
``HOST:PORT`` or ``ray://HOST:PORT``) the job joins that cluster. Input paths must be readable at the same
absolute path on every node (a shared file system).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.tables import PredictionRow
from ..io.writers import _as_row
from ..refine import SUFFIX as REFINER_SUFFIX
from .units import Unit, measurement_rows, predict_units

INSTALL_HINT = 'the Ray engine needs Ray: pip install "partus[ray]"'


def import_ray():
    """The ``ray`` module, or an InputError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the part partus uses
    except ImportError:
        raise InputError("engine", INSTALL_HINT) from None
    return ray


class _Worker:
    """A Ray actor: the model loaded once, then batches of units read, measured and turned into rows."""

    def __init__(self, blobs: list, batch_size: int, tta_flip: bool, opts: dict[str, Any]):
        import cv2
        import ray

        from ..predict import Predictor

        cv2.setNumThreads(1)
        blobs = ray.get(blobs[0])  # [(file name, model bytes)], put once by the driver
        self._dir = tempfile.TemporaryDirectory(prefix="partus-model-")
        paths = []
        for name, data in blobs:
            (Path(self._dir.name) / name).write_bytes(data)
            if not name.endswith(REFINER_SUFFIX):  # a refiner is loaded with the network beside it
                paths.append(Path(self._dir.name) / name)
        self.predictor = Predictor(paths, threads=1, spinning=False, tta_flip=tta_flip)
        self.batch_size, self.opts = batch_size, opts
        self.worker = f"{ray.get_runtime_context().get_node_id()[:8]}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        units = [
            Unit(str(p), str(n), int(s), int(e), str(q))
            for p, n, s, e, q in zip(
                batch["path"], batch["name"], batch["start"], batch["stop"], batch["problem"], strict=True
            )  # fmt: skip
        ]
        ids = {u: int(i) for u, i in zip(units, batch["uid"], strict=True)}
        cols: dict[str, list] = defaultdict(list)
        for unit, rows in predict_units(self.predictor, units, batch_size=self.batch_size, **self.opts):
            for key, m in measurement_rows(rows):
                row = _as_row(key, m)
                cols["uid"].append(ids[unit])
                cols["n"].append(len(rows))
                cols["key"].append(key)
                cols["points"].append(np.asarray(row.points, np.float64).reshape(6))
                cols["aop"].append(row.aop)
                cols["hsd"].append(row.hsd)
                cols["hsd_unit"].append(row.hsd_unit)
                cols["status"].append(row.status.value)
                cols["reason"].append(row.reason)
                cols["plane"].append(row.standard_plane)
        n = len(cols["key"])
        rss = _peak_rss_mib()
        out = {k: np.array(v, dtype=object if k in ("key", "hsd_unit", "status", "reason") else None)
               for k, v in cols.items()}  # fmt: skip
        out["points"] = np.stack(cols["points"]) if n else np.zeros((0, 6))
        out["worker"] = np.array([self.worker] * n, dtype=object)
        out["rss_mib"] = np.full(n, rss)
        return out


def _start(ray, address: str | None, workers: int | None) -> bool:
    """Connect to Ray; returns whether this job started (and must stop) the instance."""
    if ray.is_initialized():
        return False
    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        ray.init(address=address, **kw)
    else:
        cpus = max(_usable_cpus(), workers or 1)
        ray.init(num_cpus=cpus, object_store_memory=512 * 2**20, **kw)
    return True


def run_ray(
    units: Sequence[Unit],
    commit: Callable[[list[tuple[str, Any]]], None],
    stats,
    *,
    models: Sequence[str | os.PathLike] | None,
    workers: int | None,
    address: str | None,
    batch_size: int,
    tta_flip: bool = False,
    **opts: Any,
) -> None:
    """Measure ``units`` on Ray, calling ``commit(rows)`` with every finished unit's rows on
    the driver; per-worker rows and peak memory go into ``stats.workers``."""
    ray = import_ray()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError("workers", f"must be a positive integer, got {workers!r}")
    if not units:
        return
    from ..predict import DEFAULT_MODELS, model_files
    from ..refine import refiner_path

    paths = [Path(m) for p in (models or DEFAULT_MODELS) for m in model_files(p)]
    for p in paths:
        if not p.is_file():
            raise InputError(p, "model file not found")
    blobs = [(f"{i}_{q.name}", q.read_bytes()) for i, p in enumerate(paths)
             for q in (p, refiner_path(p)) if q == p or q.is_file()]  # fmt: skip
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    own = _start(ray, address, workers)
    try:
        # the model goes to the object store once; a reference nested in a list reaches the actors unresolved
        # (so that a restarted actor can fetch it again while the driver holds it)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        cpus = float(ray.cluster_resources().get("CPU", 1))
        n = workers or max(int(cpus), 1)
        items = [{"uid": i, "path": u.path, "name": u.name, "start": u.start, "stop": u.stop, "problem": u.problem,
                  "where": os.path.abspath(u.path)} for i, u in enumerate(units)]  # fmt: skip
        per_call = max(1, round(batch_size * len(units) / sum(u.rows for u in units)))  # ~batch_size images
        with warnings.catch_warnings():  # Ray 2.60 deprecates ray_remote_args_fn in favour of names it lacks
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * n))).map_batches(
                _Worker,
                fn_constructor_kwargs={
                    "blobs": [ray.put(blobs)],
                    "batch_size": batch_size,
                    "tta_flip": tta_flip,
                    "opts": opts,
                },
                batch_size=per_call,
                compute=ray.data.ActorPoolStrategy(size=n),
                num_cpus=min(1.0, cpus / n),
                ray_remote_args_fn=_no_restart,
            )
        waiting: dict[int, list] = defaultdict(list)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for j in range(len(batch["key"])):
                uid = int(batch["uid"][j])
                waiting[uid].append(_row(batch, j))
                w = stats.workers.setdefault(str(batch["worker"][j]), {"rows": 0, "peak_rss_mib": 0.0})
                w["rows"] += 1
                w["peak_rss_mib"] = max(w["peak_rss_mib"], float(batch["rss_mib"][j]))
                if len(waiting[uid]) == int(batch["n"][j]):
                    rows = waiting.pop(uid)
                    commit([(r.filename, r) for r in rows])
        if waiting:  # cannot happen unless Ray lost rows: never commit half a unit
            raise RuntimeError(f"Ray returned incomplete rows for {len(waiting)} input(s)")
    finally:
        if own:
            ray.shutdown()


def _row(batch: dict[str, np.ndarray], j: int) -> PredictionRow:
    """Row ``j`` of an actor's output batch as a PredictionRow."""
    from ..conventions import Status

    return PredictionRow(
        str(batch["key"][j]), np.asarray(batch["points"][j], np.float64).reshape(3, 2), float(batch["aop"][j]),
        float(batch["hsd"][j]), str(batch["hsd_unit"][j]), Status(str(batch["status"][j])), str(batch["reason"][j]),
        standard_plane=float(batch["plane"][j]),
    )  # fmt: skip


def _no_restart() -> dict[str, Any]:
    """Actors are not restarted: a dead worker fails the job, whose committed rows a ``--resume`` keeps
    (Ray cannot restart an actor whose constructor arguments live in the object store anyway)."""
    return {"max_restarts": 0}


def _usable_cpus() -> int:
    """CPUs this process may run on (cgroup/affinity limits included where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (NaN where the OS does not say)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
