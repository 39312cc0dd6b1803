"""``partus train --devices 2`` on the CPU: two Lightning DDP processes (gloo) share each epoch's batches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _train(out: Path, devices: int) -> subprocess.CompletedProcess:
    partus = Path(sys.executable).parent / "partus"  # DDP re-launches the command line, so the console script
    if not partus.is_file():
        pytest.skip("the partus console script is not installed next to this Python")
    tiny = ["--set", "data.n_phantoms=64", "--set", "model.kwargs={features: 4}", "--set", "train.epochs=2"]
    args = [str(partus), "train", str(REPO / "configs" / "smoke.yaml"), "--devices", str(devices), "--out", str(out)]
    return subprocess.run([*args, *tiny], capture_output=True, text=True, timeout=300, cwd=out.parent)


def test_two_cpu_processes_split_every_epoch(tmp_path):
    res = _train(tmp_path / "ddp", 2)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Starting with 2 processes" in res.stderr and "on 2 processes (DDP)" in res.stderr
    assert res.stdout.count("last.ckpt") == 1  # only rank 0 reports
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    # 64 phantoms, batch 16: one process takes 4 steps an epoch, each of two DDP processes 2 (32 images)
    assert (ckpt["epoch"], ckpt["global_step"]) == (1, 4)
