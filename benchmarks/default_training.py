"""Wall time of one full default training run on this machine (all psfhs-dev images).

    python benchmarks/default_training.py [--config configs/default.yaml] [--members]

Runs ``partus train CONFIG`` from scratch into a temporary folder and prints its wall time and peak
memory. ``--members`` times every member of the shipped ensemble (configs/default.yaml and
configs/heatmap_unet.yaml). Target (issue "Learning engine"): <= 60 min on the 2-core CPU.
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
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "default.yaml")
    ap.add_argument("--members", action="store_true", help="time every member of the shipped ensemble")
    args = ap.parse_args()
    configs = (
        [REPO / "configs" / "default.yaml", REPO / "configs" / "heatmap_unet.yaml"] if args.members else [args.config]
    )
    total = 0.0
    for cfg in configs:
        wall, rss = time_training(cfg)
        total += wall
        print(f"partus train {cfg.relative_to(REPO)}: {wall / 60:.1f} min wall, peak RSS {rss:.0f} MiB")
    if len(configs) > 1:
        print(f"all members: {total / 60:.1f} min (target <= 60 min)")


if __name__ == "__main__":
    main()
