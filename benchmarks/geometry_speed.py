"""Geometry speed on one core: masks/s for measure_mask, read+measure, and the `partus geometry` CLI.

Usage: python benchmarks/geometry_speed.py [MASK_DIR]   (default: ../shared/data/psfhs-dev/labels,
falling back to the bundled samples). Target (issue 2): >= 200 masks/s on one core.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    default = REPO.parent / "shared" / "data" / "psfhs-dev" / "labels"
    if not default.is_dir():
        default = REPO / "src" / "partus" / "samples" / "psfhs" / "labels"
    mask_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    cv2.setNumThreads(1)
    from partus.geometry import measure_mask
    from partus.io import read_label_map

    paths = sorted(mask_dir.glob("*.png"))
    labels = [read_label_map(p) for p in paths]
    for lab in labels[:20]:  # warm-up
        measure_mask(lab)
    reps = max(1, 2000 // len(labels))
    t0 = time.perf_counter()
    for _ in range(reps):
        for lab in labels:
            measure_mask(lab)
    t_measure = (time.perf_counter() - t0) / (reps * len(labels))

    t0 = time.perf_counter()
    for p in paths:
        measure_mask(read_label_map(p))
    t_read = (time.perf_counter() - t0) / len(paths)

    exe = Path(sys.executable).with_name("partus")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "taskset",
            "-c",
            str(min(os.sched_getaffinity(0))),
            str(exe),
            "geometry",
            str(mask_dir),
            "--csv",
            f"{tmp}/m.csv",
            "--quiet",
        ]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        t_cli = time.perf_counter() - t0

    print(f"masks: {len(paths)} from {mask_dir} (one core)")
    print(f"measure_mask only      : {1e3 * t_measure:7.3f} ms/mask  {1 / t_measure:8.0f} masks/s")
    print(f"read PNG + measure_mask: {1e3 * t_read:7.3f} ms/mask  {1 / t_read:8.0f} masks/s")
    print(
        f"`partus geometry` CLI  : {t_cli:7.2f} s total      {len(paths) / t_cli:8.0f} masks/s "
        "(process start-up, reading, measuring, CSV included)"
    )


if __name__ == "__main__":
    main()
