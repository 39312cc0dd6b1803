"""Batch prediction engines: units and their names, rows equal to the Predictor's, local vs Ray equality,
resuming after a crash, a two-node Ray cluster, and the message when Ray is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import write_sample_video as write_video

from partus.engine import predict_to_file
from partus.engine.units import Unit, frame_key, list_units, pending, row_order
from partus.errors import InputError
from partus.io import iter_video_frames, read_any, read_predictions_csv, read_video_range, write_predictions_csv
from partus.predict import load_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("name", "fourcc"), [("c.avi", "MJPG"), ("c.mp4", "mp4v")])
def test_a_video_range_holds_the_frames_read_in_sequence(tmp_path, name, fourcc):
    write_video(tmp_path / name, 23, fourcc)
    seq = dict(iter_video_frames(tmp_path / name))
    got = read_video_range(tmp_path / name, 9, 25)  # frames 23 and 24 do not exist: the list ends at 22
    assert [i for i, _ in got] == list(range(9, 23))
    for i, frame in got:
        assert np.array_equal(frame, seq[i])
    assert [i for i, _ in read_video_range(tmp_path / name, 20, None)] == [20, 21, 22]
    with pytest.raises(InputError, match="0 <= start < stop"):
        read_video_range(tmp_path / name, 5, 5)


def test_units_names_chunks_and_markers(mixed_inputs, tmp_path):
    files = sorted(mixed_inputs.iterdir())
    (tmp_path / "03744.png").write_bytes((mixed_inputs / "03744.png").read_bytes())
    units = list_units([*files, tmp_path / "03744.png"], chunk=32)
    by_name = {u.name: u for u in units if u.start <= 0}
    clip = [u for u in units if u.name == "clip.avi"]
    assert [(u.start, u.stop) for u in clip] == [(0, 32), (32, -1)]  # the last chunk reads to the end
    assert by_name["broken.mp4"].problem and by_name["loop.dcm"].start == -1
    assert units[-1].name == str(tmp_path / "03744.png")  # two files of one name: both named by their path
    assert str(mixed_inputs / "03744.png") in {u.name for u in units}
    assert list_units([files[0], files[0]]) == list_units([files[0]])  # a file given twice counts once
    done = {frame_key("clip.avi", 0), "loop.dcm#f00000", str(tmp_path / "03744.png")}
    left = {(u.name, u.start) for u in pending(units, done)}
    assert ("clip.avi", 0) not in left and ("clip.avi", 32) in left
    assert ("loop.dcm", -1) not in left and (str(tmp_path / "03744.png"), -1) not in left
    assert ("04050.png", -1) in left
    assert not pending([u for u in units if u.name == "clip.avi"], {"clip.avi"})  # a listing failure covers all
    order = row_order(units)
    assert order("clip.avi#f00033") > order("clip.avi#f00002") > order("blank.png")
    with pytest.raises(KeyError):
        order("other.png")
    assert Unit("a", "a", 3, 9).rows == 6 and Unit("a", "a", 32, -1).rows == 1


def _reference_rows(folder: Path) -> dict[str, object]:
    """Rows computed without the engine: the Predictor on each image and on every frame read in order."""
    model = load_model()
    rows = {}
    for p in sorted(folder.iterdir()):
        if p.suffix == ".avi":
            frames = list(iter_video_frames(p))
            for (i, _), pred in zip(frames, model.predict([f for _, f in frames]), strict=True):
                rows[frame_key(p.name, i)] = pred.measurement
            continue
        try:
            data = read_any(p)
        except InputError:
            continue
        pixels = data.pixels if data.frames > 1 else data.pixels[None]
        preds = model.predict(list(pixels), pixel_spacing=[data.pixel_spacing] * len(pixels))
        for i, pred in enumerate(preds):
            rows[p.name if data.frames == 1 else frame_key(p.name, i)] = pred.measurement
    return rows


@pytest.fixture(scope="module")
def local_csv(mixed_inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "p.csv"
    stats = predict_to_file(sorted(mixed_inputs.iterdir()), out, batch_size=8)
    assert stats.rows == stats.measured == 4 + 40 + 3 + 4 and stats.unreadable == 3
    return out


def test_local_rows_are_the_predictors_rows_in_input_order(local_csv, mixed_inputs, tmp_path):
    got = read_predictions_csv(local_csv)
    ref = _reference_rows(mixed_inputs)
    write_predictions_csv(tmp_path / "ref.csv", ref)
    expected = read_predictions_csv(tmp_path / "ref.csv")
    assert set(got) == set(expected) | {"notes.png", "cut.png", "broken.mp4"}
    for name, row in expected.items():
        assert np.array_equal(got[name].points, row.points, equal_nan=True), name
        assert np.array_equal([got[name].aop, got[name].hsd], [row.aop, row.hsd], equal_nan=True), name
        assert got[name].reason == row.reason
    names = list(got)
    assert names.index("blank.png") < names.index("broken.mp4") < names.index("clip.avi#f00000")
    assert names[names.index("clip.avi#f00000") : names.index("clip.avi#f00000") + 40] == [
        frame_key("clip.avi", i) for i in range(40)
    ]
    for bad in ("notes.png", "cut.png", "broken.mp4"):
        assert got[bad].reason.startswith("could not read the file"), got[bad].reason


def test_a_crashed_run_resumes_to_the_same_output(local_csv, mixed_inputs, tmp_path):
    out = tmp_path / "p.csv"
    files = sorted(mixed_inputs.iterdir())

    def crash(done: int, total: int) -> None:
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_to_file(files, out, batch_size=8, progress=crash)
    assert not out.exists() and any((tmp_path / "p.csv.partial").glob("part-*.csv"))
    with pytest.raises(InputError, match="--resume"):
        predict_to_file(files, out)
    stats = predict_to_file(files, out, batch_size=8, resume=True)
    assert 0 < stats.measured < stats.rows == 51
    assert out.read_text() == local_csv.read_text()


def test_ray_rows_equal_local_rows(ray_instance, local_csv, mixed_inputs, tmp_path):
    out = tmp_path / "ray.csv"
    stats = predict_to_file(sorted(mixed_inputs.iterdir()), out, engine="ray", workers=2, batch_size=8)
    assert out.read_text() == local_csv.read_text()
    assert stats.unreadable == 3 and sum(w["rows"] for w in stats.workers.values()) == 51
    assert all(w["peak_rss_mib"] > 10 for w in stats.workers.values())


def test_ray_parquet_output_equals_local_parquet(ray_instance, mixed_inputs, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    files = sorted(mixed_inputs.iterdir())[:6]
    predict_to_file(files, tmp_path / "l.parquet")
    predict_to_file(files, tmp_path / "r.parquet", engine="ray", workers=1)
    local, ray = (pq.read_table(tmp_path / f).to_pandas() for f in ("l.parquet", "r.parquet"))
    assert local.equals(ray) and local["AOP"].notna().sum() == 4  # bit-identical, NaN where not measurable


def test_engine_options_are_checked(mixed_inputs, tmp_path):
    files = [mixed_inputs / "04050.png"]
    with pytest.raises(InputError, match="one of local, ray"):
        predict_to_file(files, tmp_path / "p.csv", engine="spark")
    with pytest.raises(InputError, match="options of the Ray engine"):
        predict_to_file(files, tmp_path / "p.csv", workers=2)
    with pytest.raises(InputError, match="rows only"):
        predict_to_file(files, tmp_path / "p.csv", engine="ray", on_prediction=print)


def test_without_ray_the_engine_says_how_to_install_it(mixed_inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match=r'pip install "partus\[ray\]"'):
        predict_to_file([mixed_inputs / "04050.png"], tmp_path / "p.csv", engine="ray")
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "p.csv.partial").exists()


def test_cli_engine_options(mixed_inputs, tmp_path):
    from typer.testing import CliRunner

    from partus.cli import EXIT_USAGE, app

    runner = CliRunner()
    base = ["predict", str(mixed_inputs / "04050.png"), "--out", str(tmp_path / "p.csv")]
    for extra, message in ((["--engine", "ray", "--overlays", str(tmp_path)], "need the local engine"),
                           (["--workers", "2"], "options of --engine ray")):  # fmt: skip
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == EXIT_USAGE and message in " ".join(res.output.split())
    text = " ".join(runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"}).output.split())
    for option in ("--engine", "--address", "--workers", "--resume", ".parquet"):
        assert option in text
