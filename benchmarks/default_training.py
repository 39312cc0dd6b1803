"""Wall time of one full default training run on this machine (all psfhs-dev images).

    python benchmarks/default_training.py [--config configs/multitask.yaml]

Runs ``partus train CONFIG`` from scratch into a temporary folder and prints its wall time and peak
memory. The default model is trained by ``configs/multitask.yaml``. Target (issue "Generalisation"):
<= 90 min on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def time_training(config: Path) -> tuple[float, float]:
    exe = Path(sys.executable).parent / "partus"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([str(exe), "train", str(config), "--out", tmp, "--no-resume"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        wall = time.perf_counter() - start
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "multitask.yaml")
    args = ap.parse_args()
    wall, rss = time_training(args.config)
    print(f"partus train {args.config}: {wall / 60:.1f} min wall, peak RSS {rss:.0f} MiB (target <= 90 min)")


if __name__ == "__main__":
    main()
