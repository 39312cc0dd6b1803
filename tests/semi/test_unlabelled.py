"""Reading unlabelled scans (images, clips, multi-frame DICOM) and the commands that take them."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from _helpers import SAMPLE_IMAGES, make_dicom, sample_frames, write_sample_video
from typer.testing import CliRunner

from partus.cli import app
from partus.data.unlabelled import read_scans


@pytest.fixture
def folder(tmp_path):
    for p in sorted(SAMPLE_IMAGES.glob("*.png")):
        shutil.copy(p, tmp_path / p.name)
    write_sample_video(tmp_path / "clip.avi", 12)
    frames = np.stack(sample_frames()[:3])
    make_dicom(tmp_path / "cine.dcm", frames, frames=3)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    return tmp_path


def test_read_scans_keeps_clips_together(folder):
    files = sorted(folder.iterdir())
    scans, problems = read_scans(files, frame_step=4)
    names = [s.name for s in scans]
    assert [p for p, _ in problems] == [str(folder / "broken.png")]
    assert [n for n in names if n.startswith("clip.avi")] == ["clip.avi#f00000", "clip.avi#f00004", "clip.avi#f00008"]
    assert [n for n in names if n.startswith("cine.dcm")] == ["cine.dcm#f00000"]  # every 4th of 3 frames
    assert {s.group for s in scans if s.name.startswith("clip.avi")} == {"clip.avi"}
    singles = [s for s in scans if "#" not in s.name]
    assert len(singles) == 4 and all(s.group == s.name for s in singles)
    assert all(s.image.dtype == np.uint8 and s.image.ndim == 2 for s in scans)
    np.testing.assert_array_equal(next(s for s in scans if s.name == "cine.dcm#f00000").image, sample_frames()[0])
    with pytest.raises(ValueError, match="frame_step"):
        read_scans(files, frame_step=0)


def test_pseudo_label_command(folder, tmp_path):
    out = tmp_path / "labels"
    res = CliRunner().invoke(app, ["pseudo-label", str(folder), "--out", str(out), "--frame-step", "6"])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "broken.png" in res.output
    with open(out / "pseudo_labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 + 2 + 1  # four images, two clip frames, one DICOM frame
    kept = [r for r in rows if r["keep"] == "1"]
    assert f"kept {len(kept)} of 7 scans" in " ".join(res.output.split())
    assert len(list((out / "images").glob("*.png"))) == len(kept) == len(list((out / "labels").glob("*.png")))
    # stricter agreement keeps no more
    res2 = CliRunner().invoke(app, ["pseudo-label", str(folder), "--out", str(tmp_path / "strict"),
                                    "--max-aop-spread", "0.01"])  # fmt: skip
    assert res2.exit_code == 0
    with open(tmp_path / "strict" / "pseudo_labels.csv", newline="") as fh:
        assert all(r["keep"] == "0" for r in csv.DictReader(fh))


@pytest.mark.slow
def test_pretrain_command_initialises_training(tmp_path):
    import cv2

    from partus.data.records import load_phantoms

    for i, r in enumerate(load_phantoms(24, seed=5, size=64)):
        cv2.imwrite(str(tmp_path / f"p{i:02d}.png"), r.image)
    enc = tmp_path / "enc.pth"
    res = CliRunner().invoke(app, ["pretrain", str(tmp_path), "--out", str(enc), "--method", "mim",
                                   "--epochs", "2", "--batch-size", "8", "--init", "shipped"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "mim: 2 epochs, 6 steps" in " ".join(res.output.split())
    weights = torch.load(enc, weights_only=True)
    init = torch.load(tmp_path / "enc.init.pth", weights_only=True)
    assert weights.keys() == init.keys()  # the shipped encoder, trained further
    assert not all(torch.equal(weights[k], init[k]) for k in weights)
    bad = CliRunner().invoke(app, ["pretrain", str(tmp_path / "nothing"), "--out", str(enc)])
    assert bad.exit_code == 2 and "no such file" in " ".join(bad.output.split())
