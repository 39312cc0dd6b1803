"""Clip throughput and memory: ``measure_clip`` on synthetic sweeps (MJPG AVI, 25 fps, 256x256).

    python benchmarks/video.py [--minutes 2] [--short-seconds 20] [--batch-size 16]

Writes a sweep over a bundled scan (standard-plane segments alternating with non-standard frames,
:func:`partus.data.planes.sweep_frames`), then measures it in a fresh process with the bundled model:
decoding, plane classification, measurement, smoothing, summary, plot and overlay all included. Prints
frames/s, the peak resident memory, and the share of frames whose standard/non-standard call matches the
sweep's truth; a short clip is run the same way first, so that the peak memory of the two lengths can be
compared (bounded memory: about the same). The last line is the figures as JSON. Target: >= 30 frames/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "partus" / "samples" / "psfhs"

RUN = """
import json, resource, sys, time
import numpy as np
from partus.clip import measure_clip
from partus.predict import load_model
model = load_model()
t0 = time.perf_counter()
s = measure_clip(model, sys.argv[1], sys.argv[2], batch_size=int(sys.argv[3]))
dt = time.perf_counter() - t0
truth = np.load(sys.argv[4])
called = np.array(s.series["standard_plane"], float) >= 0.5 if s.has_plane_head else None
print(json.dumps({"frames": s.frames, "seconds": dt, "fps": s.frames / dt,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "plane_agreement": None if called is None else float((called == truth).mean()),
                  "used_frames": s.used_frames, "aop_median": s.aop_median}))
"""


def write_sweep(path: Path, n: int) -> np.ndarray:
    sys.path.insert(0, str(REPO / "src"))
    from partus.data.planes import sweep_frames
    from partus.data.records import load_psfhs

    rec = load_psfhs(SAMPLES)[1]
    h, w = rec.image.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    truth = []
    for frame, standard in sweep_frames(rec.image, rec.points, rec.mask, n):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        truth.append(standard)
    writer.release()
    return np.array(truth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--short-seconds", type=float, default=20.0)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, seconds in (("short", args.short_seconds), ("long", 60 * args.minutes)):
            clip, truth = Path(tmp) / f"{label}.avi", Path(tmp) / f"{label}.npy"
            np.save(truth, write_sweep(clip, int(round(25 * seconds))))
            res = subprocess.run([sys.executable, "-c", RUN, str(clip), str(Path(tmp) / label), str(args.batch_size),
                                  str(truth)], capture_output=True, text=True, check=True)  # fmt: skip
            out[label] = json.loads(res.stdout.strip().splitlines()[-1])
            r = out[label]
            agree = "-" if r["plane_agreement"] is None else f"{100 * r['plane_agreement']:.1f} %"
            speed = f"{r['frames']} frames in {r['seconds']:.1f} s = {r['fps']:.1f} frames/s"
            print(f"{label:5s} clip: {speed}; peak RSS {r['peak_rss_mib']:.0f} MiB; "
                  f"plane call agrees with the sweep on {agree} of frames")  # fmt: skip
    print(f"target >= 30 frames/s: {'met' if out['long']['fps'] >= 30 else 'NOT met'}; peak memory long/short "
          f"{out['long']['peak_rss_mib'] / out['short']['peak_rss_mib']:.2f}x")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
