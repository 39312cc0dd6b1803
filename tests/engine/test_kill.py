"""``partus predict`` killed with SIGKILL mid-run, then ``--resume``: exactly one row per input, each equal to
an uninterrupted measurement (local and Ray engines)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _helpers import SAMPLE_IMAGES

from partus.io import read_predictions_csv

pytestmark = pytest.mark.slow
COPIES = 120  # x 4 scans


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("many")
    for p in sorted(SAMPLE_IMAGES.glob("*.png")):
        for i in range(COPIES):
            shutil.copy(p, folder / f"{p.stem}_{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ref") / "ref.csv"
    proc = _predict(SAMPLE_IMAGES, out)
    assert proc.wait(120) == 0
    return read_predictions_csv(out)


def _predict(inputs: Path, out: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from partus.cli import main; main()", "predict", str(inputs), "--out", str(out), "-q"]
    return subprocess.Popen([*cmd, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_after_first_commit(proc: subprocess.Popen, partial: Path, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not any(partial.glob("part-*.csv")):
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < end, "no row committed in time"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_sigkill_then_resume_gives_one_row_per_input(many, expected, tmp_path, engine):
    if engine == "ray":
        pytest.importorskip("ray")
    out = tmp_path / "p.csv"
    _kill_after_first_commit(_predict(many, out, "--engine", engine), tmp_path / "p.csv.partial")
    assert not out.exists()
    committed = sum(len(read_predictions_csv(p)) for p in (tmp_path / "p.csv.partial").glob("part-*.csv"))
    assert 0 < committed < 4 * COPIES
    again = _predict(many, out, "--engine", engine)
    assert again.wait(300) == 2 and "--resume" in again.stderr.read()  # refuses to drop committed rows
    proc = _predict(many, out, "--engine", engine, "--resume")
    assert proc.wait(300) == 0, proc.stderr.read()
    with open(out) as fh:
        names = [line.split(",", 1)[0] for line in fh.read().splitlines()[1:]]
    assert len(names) == len(set(names)) == 4 * COPIES
    rows = read_predictions_csv(out)
    for name, row in rows.items():
        ref = expected[name.rsplit("_", 1)[0] + ".png"]
        assert (row.points == ref.points).all() and row.aop == ref.aop and row.status == ref.status, name
    assert not (tmp_path / "p.csv.partial").exists()
