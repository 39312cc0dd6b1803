"""Clips through the HTTP service: a job measures an uploaded clip with progress and returns the same
summary as the library; refusals (format, size, unknown job) have their codes; nothing is left on disk."""

from __future__ import annotations

import base64
import time

import cv2
import numpy as np
import pytest
from _helpers import make_dicom, sample_frames, write_sample_video

from partus.app.clips import sniff_clip
from partus.clip import measure_clip
from partus.predict import load_model


@pytest.fixture
def client(app_client):
    return app_client(max_upload_mb=4, max_clip_frames=40)


def _wait(client, key: str, timeout: float = 60.0) -> dict:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/v1/clips/{key}").json()
        seen.append(state.get("done"))
        if state["state"] in ("done", "error"):
            return state | {"seen": seen}
        time.sleep(0.1)
    raise AssertionError("the clip job did not finish")


def test_a_clip_job_reports_progress_and_the_librarys_summary(client, tmp_path):
    write_sample_video(tmp_path / "sweep.avi", 12)
    res = client.post("/v1/clips", files={"file": ("sweep.avi", (tmp_path / "sweep.avi").read_bytes())})
    assert res.status_code == 202 and res.json()["frames"] == 12
    state = _wait(client, res.json()["id"])
    assert state["state"] == "done" and state["done"] == state["total"] == 12
    expected = measure_clip(load_model(), tmp_path / "sweep.avi", tmp_path / "lib")
    s = state["summary"]
    assert s["frames"] == 12 and s["used_frames"] == expected.used_frames
    assert s["aop_median"] == pytest.approx(expected.aop_median) and s["best_frame"] == expected.best_frame
    plot = cv2.imdecode(np.frombuffer(base64.b64decode(state["plot_png"]), np.uint8), cv2.IMREAD_COLOR)
    assert plot is not None and plot.std() > 5
    assert state["frames_csv"].splitlines()[0].endswith("status,reason,standard_plane")
    assert len(state["frames_csv"].splitlines()) == 13
    assert client.get(f"/v1/clips/{res.json()['id']}").status_code == 404  # a result is handed out once


def test_a_multi_frame_dicom_is_a_clip(client, tmp_path):
    frames = np.stack([cv2.resize(f, (256, 256)) for f in sample_frames()[:3]])
    make_dicom(tmp_path / "loop.dcm", frames, frames=3)
    res = client.post("/v1/clips", files={"file": ("loop.dcm", (tmp_path / "loop.dcm").read_bytes())})
    assert res.status_code == 202
    assert _wait(client, res.json()["id"])["summary"]["frames"] == 3


def test_refusals(client, tmp_path):
    res = client.post("/v1/clips", files={"file": ("x.avi", b"not a clip at all")})
    assert res.status_code == 415 and "AVI, MP4 or multi-frame DICOM" in res.json()["detail"]
    write_sample_video(tmp_path / "long.avi", 41)
    res = client.post("/v1/clips", files={"file": ("long.avi", (tmp_path / "long.avi").read_bytes())})
    assert res.status_code == 413 and "at most 40 frames" in res.json()["detail"]
    broken = b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 200
    res = client.post("/v1/clips", files={"file": ("broken.avi", broken)})
    assert res.status_code == 422
    assert client.get("/v1/clips/nope").status_code == 404


def test_sniffing():
    assert sniff_clip(b"RIFF\x10\x00\x00\x00AVI LIST") == "avi"
    assert sniff_clip(b"\x00\x00\x00\x18ftypisom") == "mp4"
    assert sniff_clip(b"\x00" * 128 + b"DICM") == "dicom"
    assert sniff_clip(b"\x89PNG\r\n\x1a\n") is None
