"""Throughput of ``partus predict`` on the local engine and on Ray with 1 and 2 workers, on the same inputs.

    python benchmarks/scale.py [--inputs 2000] [--workers 1 2] [--batch-size 16] [--keep DIR]

The inputs are copies of the bundled scans with a little noise, so no two files are identical (PNG,
256x256 as bundled). Every engine writes a CSV through the durable journal, exactly as the command does.
One Ray instance is started first (its start-up, ~5-10 s, is reported apart, not charged to the runs);
each run then starts its own actors (model load included). Prints rows/s per run, the speed-up of N
workers over 1, each worker's peak resident memory, and whether every run's rows equal the local
engine's. The last line is the same figures as one JSON object. Target: 2 workers >= 1.6x 1 worker on the
2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "partus" / "samples" / "psfhs" / "images"


def make_inputs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    scans = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(SAMPLES.glob("*.png"))]
    files = []
    for i in range(n):
        noisy = np.clip(scans[i % len(scans)].astype(np.int16) + rng.integers(-2, 3, scans[0].shape), 0, 255)
        files.append(folder / f"scan_{i:05d}.png")
        cv2.imwrite(str(files[-1]), noisy.astype(np.uint8))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=2000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--keep", type=Path, help="write inputs and outputs here (default: a temporary folder)")
    args = ap.parse_args()

    from partus.engine import predict_to_file

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        (root / "in").mkdir(parents=True, exist_ok=True)
        files = make_inputs(root / "in", args.inputs)
        print(f"{len(files)} inputs, {os.cpu_count()} CPU(s), batch size {args.batch_size}")
        runs: dict[str, dict] = {}

        stats = predict_to_file(files, root / "local.csv", batch_size=args.batch_size)
        runs["local"] = {"rows_per_s": stats.rows_per_s, "seconds": stats.seconds,
                         "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip
        print(f"local engine      {stats.rows_per_s:7.1f} rows/s ({stats.seconds:.1f} s)")

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        print(f"Ray start-up      {time.perf_counter() - t0:7.1f} s (not charged to the runs)")
        try:
            local_rows = (root / "local.csv").read_text()
            for n in args.workers:
                out = root / f"ray{n}.csv"
                stats = predict_to_file(files, out, engine="ray", workers=n, batch_size=args.batch_size)
                mem = [w["peak_rss_mib"] for w in stats.workers.values()]
                same = out.read_text() == local_rows
                runs[f"ray{n}"] = {"rows_per_s": stats.rows_per_s, "seconds": stats.seconds, "workers_used": len(mem),
                                   "worker_peak_rss_mib": mem, "rows_equal_local": same}  # fmt: skip
                print(f"Ray, {n} worker(s)  {stats.rows_per_s:7.1f} rows/s ({stats.seconds:.1f} s); worker peak RSS "
                      f"{', '.join(f'{m:.0f}' for m in mem)} MiB; rows equal local: {same}")  # fmt: skip
        finally:
            ray.shutdown()
        base = runs.get("ray1", {}).get("rows_per_s")
        for n in args.workers:
            if base and n != 1:
                runs[f"ray{n}"]["speedup_vs_1"] = runs[f"ray{n}"]["rows_per_s"] / base
                print(f"speed-up of {n} workers over 1: {runs[f'ray{n}']['speedup_vs_1']:.2f}x (target >= 1.6x for 2)")
        print(json.dumps({"inputs": len(files), "cpus": os.cpu_count(), "runs": runs}))


if __name__ == "__main__":
    main()
