"""Inference speed, size and memory of the shipped model on this machine, against the organisers' baseline.

    python benchmarks/speed.py [--model M.onnx ...] [--repeat 50] [--folder-images 300] [--baseline-repeat 3]

Prints: the model's size on disk (sum of its ONNX files, MB = 10**6 bytes), model load time (in a fresh
process: import + ONNX Runtime session), end-to-end ms/image of ``Predictor.measure`` at 256x256 and
512x512 (resize, ONNX Runtime, upsampling, mask clean-up, landmark rule, AoP/HSD, verdict; median of
``--repeat``), folder throughput of ``partus predict`` (reading PNGs, batched inference, CSV), ONNX
Runtime vs torch eager on the same network, peak resident memory of each process, and the IUGC 2025
organisers' baseline (plain 64-1024-channel U-Net, 1x512x512 input, see ``baseline_unet.py``) timed in
the same run as they run it (torch eager, CPU, batch 1, mean of ``--baseline-repeat`` passes after 2
warm-up passes) with its parameter count and the speed-up baseline_ms / measure() ms at 256x256.
The last line is the same figures as one JSON object.
Targets: <= 15 ms/image at 256x256, >= 200x faster than the baseline, model <= 30 MB on disk,
>= 40 images/s for a folder, model load <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "partus" / "samples" / "psfhs" / "images"


def _child(code: str, *args: str):
    """Run ``code`` in a fresh interpreter and return the JSON it prints on its last line."""
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


LOAD = """
import json, resource, time
t0 = time.perf_counter()
from partus.predict import Predictor
t1 = time.perf_counter()
p = Predictor({model!r})
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"import_s": t1 - t0, "session_s": t2 - t1, "rss_mib": rss}}))
"""

MEASURE = """
import json, resource, sys, time
import cv2, numpy as np
from partus.predict import Predictor
p = Predictor({model!r})
img = cv2.imread(sys.argv[1], cv2.IMREAD_GRAYSCALE)
out = {{}}
for size in (256, 512):
    im = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    for _ in range(3):
        p.measure(im)
    ts = []
    for _ in range({repeat}):
        t = time.perf_counter(); m = p.measure(im); ts.append(time.perf_counter() - t)
    assert m.ok, m.reason
    out[str(size)] = {{"median_ms": 1e3 * float(np.median(ts)), "p95_ms": 1e3 * float(np.percentile(ts, 95))}}
out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

TORCH = """
import json, os, time
import numpy as np, torch
from partus.export import read_metadata
from partus.models import create_model
from partus.predict import Predictor
torch.set_num_threads(max(1, os.cpu_count()))
def bench(f):
    for _ in range(5): f()
    ts = []
    for _ in range({repeat}):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))
out = []
for path, member in zip({model!r}, Predictor({model!r}).models):
    meta = read_metadata(path)
    net = create_model(meta["model"], **meta["model_kwargs"]).eval()
    s = meta["input_size"]
    x = np.random.default_rng(0).random((1, 1, s, s), dtype=np.float32)
    with torch.inference_mode():
        eager = bench(lambda: net(torch.from_numpy(x)))
    ort = bench(lambda: member.session.run(None, {{"image": x}}))
    out.append({{"model": meta["model"], "input": s, "torch_eager_ms": eager, "onnxruntime_ms": ort}})
print(json.dumps(out))
"""


def model_files(model: list[str]) -> list[Path]:
    """The model's ONNX files: each network and its symphysis refiner beside it (``NAME.refiner.onnx``)."""
    from partus.refine import refiner_path

    return [q for m in model for q in (Path(m), refiner_path(m)) if q.is_file()]


def model_mb(model: list[str]) -> float:
    """Size on disk of the model's ONNX files, in MB (10**6 bytes)."""
    return sum(p.stat().st_size for p in model_files(model)) / 1e6


def baseline(repeat: int) -> dict:
    """Time the organisers' baseline U-Net in a fresh process (see ``baseline_unet.py``)."""
    script = Path(__file__).with_name("baseline_unet.py")
    cmd = [sys.executable, str(script), "--repeat", str(repeat), "--warmup", "2", "--size", "512"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def folder_throughput(model: list[str], n: int) -> dict:
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        rng = np.random.default_rng(0)
        sources = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(SAMPLES.glob("*.png"))]
        for i in range(n):  # jittered copies so no two files are identical
            img = sources[i % len(sources)].astype(np.int16) + rng.integers(-3, 4, sources[0].shape)
            cv2.imwrite(str(folder / f"{i:05d}.png"), np.clip(img, 0, 255).astype(np.uint8))
        cmd = [str(Path(sys.executable).parent / "partus"), "predict", str(folder), "--out", f"{tmp}/p.csv", "-q"]
        for m in model:
            cmd += ["--model", m]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rows = sum(1 for _ in open(f"{tmp}/p.csv")) - 1
    return {"images": rows, "wall_s": wall, "images_per_s": rows / wall, "rss_mib": max(rss, before) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="*", default=[], help="ONNX model(s) (default: the bundled ensemble)")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--folder-images", type=int, default=300)
    ap.add_argument("--baseline-repeat", type=int, default=3, help="timed passes of the baseline U-Net (mean)")
    args = ap.parse_args()
    if args.repeat < 1 or args.folder_images < 1 or args.baseline_repeat < 1:
        ap.error("--repeat, --folder-images and --baseline-repeat must be >= 1")
    from partus.predict import DEFAULT_MODELS

    model = args.model or [str(p) for p in DEFAULT_MODELS]
    summary: dict = {"cpu_count": os.cpu_count(), "model": model}
    print(f"partus inference speed on {os.cpu_count()} CPU core(s); model {model}")
    mb = summary["model_mb"] = model_mb(model)
    print(f"model size on disk: {mb:.1f} MB in {len(model_files(model))} ONNX file(s)   (target: <= 30 MB)")
    load = min((_child(LOAD.format(model=model)) for _ in range(3)), key=lambda d: d["import_s"] + d["session_s"])
    total = load["import_s"] + load["session_s"]
    summary["load_s"], summary["load_rss_mib"] = total, load["rss_mib"]
    print(f"model load (fresh process): import {load['import_s']:.2f} s + session {load['session_s']:.3f} s "
          f"= {total:.2f} s (target <= 1 s); peak RSS {load['rss_mib']:.0f} MiB")  # fmt: skip
    sample = str(sorted(SAMPLES.glob("*.png"))[0])
    ms = _child(MEASURE.format(model=model, repeat=args.repeat), sample)
    for size in ("256", "512"):
        d = ms[size]
        target = "   (target: <= 15 ms/image at 256x256)" if size == "256" else ""
        summary[f"measure_ms_{size}"], summary[f"measure_p95_ms_{size}"] = d["median_ms"], d["p95_ms"]
        print(f"measure() end-to-end at {size}x{size}: median {d['median_ms']:.1f} ms, "
              f"p95 {d['p95_ms']:.1f} ms{target}")  # fmt: skip
    print(f"  peak RSS of that process: {ms['rss_mib']:.0f} MiB")
    summary["measure_rss_mib"] = ms["rss_mib"]
    fold = folder_throughput(model, args.folder_images)
    summary["folder_images_per_s"], summary["folder_rss_mib"] = fold["images_per_s"], fold["rss_mib"]
    print(f"partus predict on a folder of {fold['images']} PNGs: {fold['images_per_s']:.1f} images/s "
          f"({fold['wall_s']:.1f} s incl. start-up; target >= 40); peak RSS {fold['rss_mib']:.0f} MiB")  # fmt: skip
    try:
        tvs = summary["torch_vs_onnxruntime"] = _child(TORCH.format(model=model, repeat=args.repeat))
        for tv in tvs:
            ratio = tv["torch_eager_ms"] / tv["onnxruntime_ms"]
            print(f"{tv['model']} alone, batch 1 at {tv['input']} px: ONNX Runtime {tv['onnxruntime_ms']:.2f} ms vs "
                  f"torch eager {tv['torch_eager_ms']:.2f} ms ({ratio:.1f}x)")  # fmt: skip
        base = baseline(args.baseline_repeat)
    except subprocess.CalledProcessError as exc:  # torch is a training extra; inference does not need it
        print(f"torch comparison and baseline skipped (torch failed: {exc.stderr.strip().splitlines()[-1]})")
    else:
        speedup = base["ms"] / ms["256"]["median_ms"]
        summary.update(baseline_ms=base["ms"], baseline_params=base["params"], speedup_vs_baseline=speedup)
        print(f"organisers' baseline U-Net (64-1024 channels, {base['params'] / 1e6:.2f} M parameters = "
              f"{base['params']:,}), torch eager CPU, batch 1, {base['size']}x{base['size']}, "
              f"{base['threads']} thread(s): mean {base['ms']:.0f} ms/image over {base['repeat']} run(s)")  # fmt: skip
        print(f"speed-up vs baseline: {base['ms']:.0f} ms / {ms['256']['median_ms']:.1f} ms "
              f"(median measure() at 256x256) = {speedup:.0f}x faster   (target: >= 200x faster)")  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
