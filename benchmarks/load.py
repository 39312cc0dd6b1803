"""Load test of the HTTP service: bounded traffic to ``partus serve`` on 127.0.0.1.

    python benchmarks/load.py [--requests 500] [--concurrency 1 8 32] [--no-overlay]

Starts the real server in a subprocess, then for each concurrency level sends ``--requests`` uploads of
a bundled 256x256 sample (``POST /v1/measure``, overlay included unless ``--no-overlay``) and prints
requests/s, p50/p95 latency, the number of errors (must be 0), and the server's peak resident memory
(VmHWM, must stay bounded as concurrency grows).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src" / "partus" / "samples" / "psfhs" / "images" / "04200.png"


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _level(url: str, n: int, concurrency: int, overlay: bool) -> tuple[float, np.ndarray, int]:
    payload = SAMPLE.read_bytes()
    latencies: list[float] = []
    errors = 0
    todo = iter(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for _ in todo:
            t = time.perf_counter()
            try:
                res = await client.post(
                    "/v1/measure", files={"files": (SAMPLE.name, payload, "image/png")}, params={"overlay": overlay}
                )
                ok = res.status_code == 200 and res.json()["results"][0]["status"] == "ok"
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return n / wall, 1e3 * np.array(latencies), errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--no-overlay", action="store_true")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "partus"
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            print("server did not start")
            return 1
        print(f"partus serve on {url}; {args.requests} requests per level, 256x256 PNG, overlay={not args.no_overlay}")
        print(f"server RSS after start-up: {_peak_rss_mib(proc.pid):.0f} MiB")
        print(f"{'concurrency':>11} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7} {'server peak MiB':>16}")
        total_errors = 0
        for c in args.concurrency:
            rate, lat, errors = asyncio.run(_level(url, args.requests, c, not args.no_overlay))
            total_errors += errors
            p50, p95 = np.percentile(lat, [50, 95])
            print(f"{c:>11} {rate:>8.1f} {p50:>8.1f} {p95:>8.1f} {errors:>7} {_peak_rss_mib(proc.pid):>16.0f}")
        return 1 if total_errors else 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
