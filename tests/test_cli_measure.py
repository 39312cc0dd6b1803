"""partus measure / predict / submission with the bundled model: images, clips, folders with bad files,
and a challenge submission that runs on its own."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from partus.cli import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, app
from partus.io import read_label_map, read_predictions_csv
from partus.predict import DEFAULT_MODELS, Predictor, load_model
from partus.refine import refiner_path

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "partus" / "samples" / "psfhs"
runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _frames() -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((SAMPLES / "images").glob("*.png"))]


def test_measure_prints_aop_and_writes_overlays(tmp_path):
    res = _run("measure", SAMPLES / "images", "--out", tmp_path, "--json")
    assert res.exit_code == EXIT_OK, res.output
    data = json.loads(res.stdout)
    assert [Path(d["file"]).name for d in data] == ["03744.png", "04050.png", "04200.png", "04350.png"]
    expected = {p.name: load_model().measure(p) for p in (SAMPLES / "images").glob("*.png")}
    assert sum(d["status"] == "ok" for d in data) >= 3
    for d in data:
        m = expected[Path(d["file"]).name]  # the CLI reports what the library measures, flagged or not
        assert d["status"] == m.status.value and d["aop_deg"] == pytest.approx(m.aop)
        overlay = cv2.imread(str(tmp_path / f"{Path(d['file']).stem}_overlay.png"))
        assert overlay is not None and overlay.shape[0] >= 512 and overlay.std() > 20


def test_measure_video_writes_per_frame_csv_and_plot(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (256, 256))
    frames = _frames() * 2
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    res = _run("measure", video, "--out", tmp_path / "out", "--step", "2")
    assert res.exit_code == EXIT_OK, res.output
    rows = read_predictions_csv(tmp_path / "out" / "clip_frames.csv")
    assert list(rows) == [f"clip_f{i:05d}" for i in range(0, len(frames), 2)]
    single = load_model().measure(frames[0])
    assert rows["clip_f00000"].aop == pytest.approx(single.aop, abs=3)  # MJPG is lossy
    plot = cv2.imread(str(tmp_path / "out" / "clip_aop.png"))
    assert plot is not None and plot.std() > 5
    text = " ".join(res.output.split())
    assert "standard-plane frames" in text and "AoP median" in text
    summary = json.loads((tmp_path / "out" / "clip_summary.json").read_text())
    assert summary["frames"] == 4 and summary["best_frame"] in (0, 2, 4, 6)
    assert (tmp_path / "out" / "clip_best.png").is_file()


def test_measure_multi_frame_volume_is_a_clip(tmp_path):
    stack = np.stack(_frames()[:3])
    img = sitk.GetImageFromArray(stack)
    img.SetSpacing((0.2, 0.2, 1.0))
    sitk.WriteImage(img, str(tmp_path / "stack.mha"))
    res = _run("measure", tmp_path / "stack.mha", "--out", tmp_path)
    assert res.exit_code == EXIT_OK, res.output
    rows = read_predictions_csv(tmp_path / "stack_frames.csv")
    assert len(rows) == 3 and all(r.hsd_unit == "mm" for r in rows.values())


def test_predict_folder_reports_bad_files_and_keeps_going(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    frames = _frames()
    cv2.imwrite(str(folder / "a.png"), frames[0])
    cv2.imwrite(str(folder / "b16.png"), frames[1].astype(np.uint16) * 257)  # 16-bit
    cv2.imwrite(str(folder / "tiny.png"), frames[2][:20, :20])
    cv2.imwrite(str(folder / "blank.png"), np.zeros((256, 256), np.uint8))
    (folder / "notes.png").write_text("not an image at all\n")
    (folder / "cut.png").write_bytes((folder / "a.png").read_bytes()[:300])
    res = _run("predict", folder, "--out", tmp_path / "p.csv", "--overlays", tmp_path / "ov", "--masks", tmp_path / "m")
    assert res.exit_code == EXIT_PARTIAL, res.output
    with open(tmp_path / "p.csv", newline="") as f:
        rows = {r["Filename"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"a.png", "b16.png", "tiny.png", "blank.png", "notes.png", "cut.png"}
    assert rows["a.png"]["status"] == rows["b16.png"]["status"] == "ok"
    assert "too small" in rows["tiny.png"]["reason"] and "blank" in rows["blank.png"]["reason"]
    for bad in ("notes.png", "cut.png"):
        assert rows[bad]["status"] == "not measurable" and rows[bad]["reason"].startswith("could not read")
        assert bad in res.output
    mask = read_label_map(tmp_path / "m" / "a_mask.png")
    assert set(np.unique(mask)) == {0, 1, 2} and (tmp_path / "ov" / "a_overlay.png").is_file()
    assert not (tmp_path / "m" / "notes_mask.png").exists()


def test_predict_usage_errors(tmp_path):
    res = _run("predict", tmp_path / "nowhere", "--out", tmp_path / "p.csv")
    assert res.exit_code == EXIT_USAGE and "no such file" in " ".join(res.output.split())
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"junk")
    res = _run("measure", SAMPLES / "images", "--model", bad, "--out", tmp_path)
    assert res.exit_code == EXIT_USAGE and "not a readable ONNX model" in " ".join(res.output.split())


def test_submission_runs_on_its_own(tmp_path):
    out = tmp_path / "sub"
    res = _run("submission", "--out", out)
    assert res.exit_code == EXIT_OK, res.output
    assert (out / "model.py").is_file()
    refiner = ["model.refiner.onnx"] if refiner_path(DEFAULT_MODELS[0]).is_file() else []  # goes with the network
    assert sorted(p.name for p in out.glob("*.onnx")) == ["model.onnx", *refiner]
    assert not (out / "partus" / "train").exists()  # inference code only
    code = f"""
import sys; sys.path.insert(0, {str(out)!r})
from model import model
from PIL import Image
m = model(); m.load({str(out)!r})
import partus
assert partus.__file__.startswith({str(out)!r}), partus.__file__
assert 'torch' not in sys.modules
out = m.predict(Image.open({str(SAMPLES / "images" / "04050.png")!r}).convert("RGB"))
print(list(map(float, out)))
"""
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = np.array(json.loads(proc.stdout))
    expected = load_model().measure(SAMPLES / "images" / "04050.png").landmarks.to_array().reshape(6)
    assert got.shape == (6,) and np.allclose(got, expected)
    res = _run("submission", "--out", out)
    assert res.exit_code == EXIT_USAGE and "not an empty folder" in " ".join(res.output.split())


def test_predict_survives_nan_volumes_decoder_errors_markup_names_and_name_clashes(tmp_path):
    import struct
    import zlib

    folder = tmp_path / "in"
    folder.mkdir()
    frame = _frames()[0]
    cv2.imwrite(str(folder / "a.png"), frame)
    sitk.WriteImage(sitk.GetImageFromArray(frame), str(folder / "a.mha"))  # same stem as a.png
    cv2.imwrite(str(folder / "weird[red].png"), frame)  # rich markup in a name
    nan = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    nan[5, 5] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(nan), str(folder / "nan.mha"))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
    (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b""))
    res = _run("predict", folder, "--out", tmp_path / "p.csv", "--overlays", tmp_path / "ov", "--batch-size", "2")
    assert res.exit_code == EXIT_PARTIAL, res.output
    with open(tmp_path / "p.csv", newline="") as f:
        rows = {r["Filename"]: r for r in csv.DictReader(f)}
    assert rows["a.png"]["status"] == rows["a.mha"]["status"] == rows["weird[red].png"]["status"] == "ok"
    assert "NaN" in rows["nan.mha"]["reason"] and "too large" in rows["bomb.png"]["reason"]
    overlays = sorted(p.name for p in (tmp_path / "ov").iterdir())
    assert overlays == ["a_2_overlay.png", "a_overlay.png", "weird[red]_overlay.png"]


def test_measure_reports_a_bad_file_and_measures_the_rest(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    res = _run("measure", SAMPLES / "images" / "04050.png", tmp_path / "bad.png", "--out", tmp_path / "o", "--json")
    assert res.exit_code == EXIT_PARTIAL
    assert "bad.png" in res.output and (tmp_path / "o" / "04050_overlay.png").is_file()


def test_batch_size_must_be_positive():
    from partus.errors import InputError

    with pytest.raises(InputError, match="batch_size"):
        load_model().predict([_frames()[0]], batch_size=0)


def _help(*args) -> str:
    res = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == EXIT_OK, res.output
    return " ".join(res.output.split())


@pytest.mark.parametrize("command", ["measure", "predict"])
def test_orientation_option_is_auto_standard_or_mirrored_default_auto(command):
    text = _help(command)
    assert "<auto|standard|mirrored>" in text or "[auto|standard|mirrored]" in text
    assert "orientation head decides per scan" in text and "[default: auto]" in text


def test_bad_orientation_is_a_usage_error(tmp_path):
    res = runner.invoke(app, ["predict", str(SAMPLES / "images"), "--out", str(tmp_path / "p.csv"),
                              "--orientation", "sideways"])  # fmt: skip
    assert res.exit_code == EXIT_USAGE
    assert not (tmp_path / "p.csv").exists()


def test_measure_table_shows_a_mirrored_display(tmp_path):
    img = SAMPLES / "images" / "04050.png"
    args = ["measure", img, SAMPLES / "images" / "03744.png", "--out", tmp_path, "--orientation", "mirrored"]
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert res.exit_code == EXIT_OK, res.output
    rows = [ln for ln in res.stdout.splitlines() if ".png" in ln and not ln.startswith("(")]  # not the reasons
    notes = [ln for ln in res.stdout.splitlines() if ln.startswith("(")]
    assert len(rows) == 2  # each row says the scan was taken as mirrored, in its status or its reason below
    assert all(r.rstrip().endswith("ok, mirrored") or "not measurable" in r for r in rows)
    assert len(notes) == sum("not measurable" in r for r in rows)
    assert all(n.endswith("(taken as a mirrored display)") for n in notes)
    res = _run("measure", img, "--out", tmp_path, "--orientation", "standard", "--json")
    assert res.exit_code == EXIT_OK, res.output
    [d] = json.loads(res.stdout)
    assert d["orientation"]["display"] == "standard"  # extras are merged into the JSON record
    res = _run("measure", img, "--out", tmp_path, "--orientation", "standard")
    assert res.exit_code == EXIT_OK and "PS1 x, y" in res.stdout
    assert "mirrored" not in res.stdout  # said only of a scan taken as mirrored


def test_measure_table_gives_each_flagged_scan_its_reason_below(tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.zeros((256, 256), np.uint8))
    args = ["measure", SAMPLES / "images" / "03744.png", blank, "--out", tmp_path / "o"]
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "80"}, catch_exceptions=False)  # a terminal
    assert res.exit_code == EXIT_OK, res.output
    row = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith("blank.png"))
    assert row.rstrip().endswith("not measurable (1)")  # one line, nothing cut, at 80 columns
    m = Predictor().measure(SAMPLES / "images" / "03744.png")  # its row, every cell whole
    (x1, y1), (x2, y2), (x3, y3) = m.landmarks.to_array()
    want = f"03744.png  {x1:.0f}, {y1:.0f}  {x2:.0f}, {y2:.0f}  {x3:.0f}, {y3:.0f}  {m.aop:.1f}  {m.hsd:.1f} px  ok"
    assert [" ".join(ln.split()) for ln in res.stdout.splitlines() if "03744.png" in ln] == [" ".join(want.split())]
    note = next(ln for ln in res.stdout.splitlines() if ln.startswith("(1) "))
    assert note.startswith("(1) blank.png: ") and "blank" in note[len("(1) blank.png: ") :]
