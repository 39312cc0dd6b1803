"""Fixtures of the engine tests: a folder of mixed inputs (images, a video, a multi-frame DICOM, bad files)
and a Ray instance shared by the module's tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from _helpers import SAMPLE_IMAGES as SAMPLES
from _helpers import make_dicom, sample_frames, write_sample_video


@pytest.fixture(scope="module")
def mixed_inputs(tmp_path_factory) -> Path:
    """4 sample scans, a 40-frame video (two chunks), a 3-frame DICOM, a blank image, a text file named
    .png, a truncated PNG and a broken video."""
    folder = tmp_path_factory.mktemp("inputs")
    for p in sorted(SAMPLES.glob("*.png")):
        shutil.copy(p, folder / p.name)
    write_sample_video(folder / "clip.avi", 40)
    frames = sample_frames()
    make_dicom(folder / "loop.dcm", np.stack([cv2.resize(f, (256, 256)) for f in frames[:3]]), frames=3)
    cv2.imwrite(str(folder / "blank.png"), np.zeros((256, 256), np.uint8))
    (folder / "notes.png").write_text("not an image\n")
    (folder / "cut.png").write_bytes((SAMPLES / "04050.png").read_bytes()[:300])
    (folder / "broken.mp4").write_bytes(b"\0" * 64)
    return folder


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs) for a module's tests; the engine joins it instead of starting one."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=300 * 2**20)
    yield ray
    ray.shutdown()
