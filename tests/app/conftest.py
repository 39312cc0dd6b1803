"""A real partus server (``partus serve`` in a subprocess) on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, tmp_dir: Path, proc: subprocess.Popen):
        self.url, self.tmp_dir, self.proc = url, tmp_dir, proc

    def leftovers(self) -> list[Path]:
        return sorted(self.tmp_dir.rglob("*"))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    tmp_dir = tmp_path_factory.mktemp("server-tmp")
    port = _free_port()
    exe = Path(sys.executable).parent / "partus"
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--tmp-dir", str(tmp_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"partus serve did not start: {proc.stderr.read().decode(errors='replace')}")
        time.sleep(0.2)
    yield Server(url, tmp_dir, proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def app_client(tmp_path):
    """An in-process client of ``create_app(load_model(), **options)`` whose per-request folders go to a
    private folder that must be empty again when the test ends."""
    import warnings

    from partus.app import create_app
    from partus.predict import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    work = tmp_path / "work"
    work.mkdir()
    clients = []

    def make(**options):
        clients.append(TestClient(create_app(load_model(), tmp_root=work, **options)).__enter__())
        return clients[-1]

    yield make
    for c in clients:
        c.__exit__(None, None, None)
    assert list(work.iterdir()) == [], "a request left files behind"
