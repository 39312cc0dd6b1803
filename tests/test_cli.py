"""The partus CLI: geometry and evaluate, on the bundled samples and (when present) psfhs-dev."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from partus import __version__
from partus.cli import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, app
from partus.io import read_predictions_csv

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "partus" / "samples" / "psfhs"
runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_version():
    res = _run("--version")
    assert res.exit_code == EXIT_OK and __version__ in res.stdout


def test_geometry_on_bundled_samples_matches_their_landmarks(tmp_path):
    res = _run("geometry", SAMPLES / "labels", "--json", "--csv", tmp_path / "m.csv")
    assert res.exit_code == EXIT_OK, res.output
    data = json.loads(res.stdout)
    expected = {r["Filename"]: r for r in _rows(SAMPLES / "landmarks.csv")}
    assert sorted(Path(d["file"]).name for d in data) == sorted(expected)
    for d in data:
        row = expected[Path(d["file"]).name]
        assert d["status"] == "ok"
        for k in ("PS1", "PS2", "FH1"):
            assert "({:g}, {:g})".format(*d["landmarks"][k]) == row[k]
        assert d["aop_deg"] == pytest.approx(float(row["AOP"]), abs=1e-6)
        assert d["hsd"] == pytest.approx(float(row["HSD"]), abs=1e-6)
    written = read_predictions_csv(tmp_path / "m.csv")
    assert sorted(written) == sorted(expected)
    assert written["04350.png"].aop == pytest.approx(74.888840, abs=1e-6)


def test_geometry_mirrored_option_and_overlays(tmp_path):
    res = _run(
        "geometry", SAMPLES / "labels" / "04350.png", "--orientation", "mirrored", "--json",
        "--images", SAMPLES / "images", "--overlays", tmp_path,
    )  # fmt: skip
    assert res.exit_code == EXIT_OK, res.output
    (d,) = json.loads(res.stdout)
    assert d["orientation"] == "mirrored" and 120 < d["aop_deg"] < 160  # 74.9 deg by the official rule
    ov = cv2.imread(str(tmp_path / "04350_overlay.png"))
    assert ov is not None and min(ov.shape[:2]) >= 512
    assert ov.std() > 20  # an image, not a blank canvas


def test_geometry_skips_a_bad_file_and_reports_partial_failure(tmp_path):
    for name in ("03744.png", "04050.png"):
        shutil.copy(SAMPLES / "labels" / name, tmp_path)
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    np.save(tmp_path / "ignored.npy", np.zeros(3))  # not a mask suffix: not picked up from a folder
    res = _run("geometry", tmp_path, "--csv", tmp_path / "out.csv")
    assert res.exit_code == EXIT_PARTIAL
    assert "broken.png" in res.stderr
    assert sorted(r["Filename"] for r in _rows(tmp_path / "out.csv")) == ["03744.png", "04050.png"]


def test_geometry_reports_not_measurable_masks(tmp_path):
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((64, 64), np.uint8))
    res = _run("geometry", tmp_path / "empty.png", "--json")
    assert res.exit_code == EXIT_OK
    (d,) = json.loads(res.stdout)
    assert d["status"] == "not measurable" and "not found" in d["reason"] and d["aop_deg"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("geometry", "/nonexistent/mask.png"), "no such file or folder"),
        (("geometry", "{tmp}"), "no input files found"),
        (("evaluate", "--pred", "/nonexistent.csv", "--gt", "/nonexistent.csv"), "no such file"),
    ],
)
def test_usage_errors_exit_2_with_a_message(tmp_path, args, message):
    res = _run(*(a.format(tmp=tmp_path) for a in args))
    assert res.exit_code == EXIT_USAGE
    assert message in res.stderr


def test_bad_option_value_is_a_usage_error():
    res = runner.invoke(app, ["geometry", str(SAMPLES / "labels"), "--orientation", "sideways"])
    assert res.exit_code == EXIT_USAGE


# --------------------------------------------------------------------------- evaluate
def _gt_sources():
    yield pytest.param(SAMPLES / "landmarks.csv", id="bundled")
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "psfhs-dev" / "landmarks.csv"
    yield pytest.param(shared, id="psfhs-dev", marks=pytest.mark.shared)


def _point(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.strip("()").split(",")])


def _angle(a, b, c) -> float:
    """Independent AoP: law of cosines."""
    ab, ac, bc = math.dist(a, b), math.dist(a, c), math.dist(b, c)
    return math.degrees(math.acos(max(-1.0, min(1.0, (ab**2 + ac**2 - bc**2) / (2 * ab * ac)))))


@pytest.mark.parametrize("gt_csv", list(_gt_sources()))
def test_evaluate_against_itself_is_zero(gt_csv, tmp_path):
    res = _run("evaluate", "--pred", gt_csv, "--gt", gt_csv, "--json", "--report", tmp_path / "rep")
    assert res.exit_code == EXIT_OK, res.output
    s = json.loads(res.stdout)["landmarks"]
    assert s["n_missing"] == 0 and s["mre"] == 0.0
    assert all(v == 0.0 for v in s["per_landmark"].values())
    assert all(v == 1.0 for v in s["sdr"].values())
    assert s["aop"]["mae"] == pytest.approx(0.0, abs=1e-6)  # CSV AoP is rounded to 1e-6
    assert s["hsd"]["mae"] == 0.0
    for f in ("summary.json", "per_image.csv", "landmark_errors.png", "aop_bland_altman.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 0
    table = _run("evaluate", "--pred", gt_csv, "--gt", gt_csv)
    assert "MRE (px)" in table.stdout and "0.000" in table.stdout


@pytest.mark.parametrize("gt_csv", list(_gt_sources()))
def test_evaluate_known_perturbations_gives_analytic_errors(gt_csv, tmp_path):
    """FH1 moved by (3, 4) everywhere (error 5), PS1 by (-6, 8) on every other row (error 10)."""
    rows = _rows(gt_csv)
    pert, expected_aop_err = [], []
    for i, r in enumerate(rows):
        ps1, ps2, fh1 = (_point(r[k]) for k in ("PS1", "PS2", "FH1"))
        q1 = ps1 + ([-6, 8] if i % 2 == 0 else [0, 0])
        f1 = fh1 + [3, 4]
        expected_aop_err.append(abs(_angle(q1, ps2, f1) - _angle(ps1, ps2, fh1)))
        fmt = "({:g}, {:g})".format
        pert.append({**r, "PS1": fmt(*q1), "FH1": fmt(*f1), "HSD": f"{float(r['HSD']) + 1.5:.6f}"})
    pred = tmp_path / "pred.csv"
    with open(pred, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(pert)
    res = _run("evaluate", "--pred", pred, "--gt", gt_csv, "--json")
    assert res.exit_code == EXIT_OK, res.output
    s = json.loads(res.stdout)["landmarks"]
    n = len(rows)
    n_ps1 = (n + 1) // 2
    assert s["per_landmark"]["FH1"] == pytest.approx(5.0)
    assert s["per_landmark"]["PS2"] == pytest.approx(0.0)
    assert s["per_landmark"]["PS1"] == pytest.approx(10.0 * n_ps1 / n)
    assert s["mre"] == pytest.approx((5.0 * n + 10.0 * n_ps1) / (3 * n))
    # within 5 px: every PS2 (0) and FH1 (exactly 5: SDR counts <= r), and the unmoved PS1s
    assert s["sdr"]["5"] == pytest.approx((3 * n - n_ps1) / (3 * n))
    assert s["sdr"]["10"] == pytest.approx(1.0)
    assert s["aop"]["mae"] == pytest.approx(np.mean(expected_aop_err), abs=1e-6)
    assert s["hsd"]["mae"] == pytest.approx(1.5, abs=1e-6)


def test_evaluate_counts_missing_predictions(tmp_path):
    rows = _rows(SAMPLES / "landmarks.csv")
    pred = tmp_path / "pred.csv"
    with open(pred, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[:3] + [{"Filename": "other.png", **{k: v for k, v in rows[0].items() if k != "Filename"}}])
    res = _run("evaluate", "--pred", pred, "--gt", SAMPLES / "landmarks.csv", "--json")
    assert res.exit_code == EXIT_OK
    s = json.loads(res.stdout)["landmarks"]
    assert s["n_images"] == 4 and s["n_missing"] == 1 and s["mre"] == 0.0
    assert "ignored 1 prediction" in res.stderr


def test_evaluate_masks_with_one_missing_prediction(tmp_path):
    pm = tmp_path / "pred_masks"
    shutil.copytree(SAMPLES / "labels", pm)
    (pm / "04200.png").unlink()
    csv_path = SAMPLES / "landmarks.csv"
    res = _run("evaluate", "--pred", csv_path, "--gt", csv_path, "--pred-masks", pm, "--gt-masks", SAMPLES / "labels")
    assert res.exit_code == EXIT_OK, res.output
    assert "1 predicted mask(s) missing" in res.stderr
    res = _run(
        "evaluate", "--pred", csv_path, "--gt", csv_path, "--pred-masks", pm, "--gt-masks", SAMPLES / "labels", "--json"
    )
    seg = json.loads(res.stdout)["segmentation"]
    assert seg["per_class"]["FH"]["dice"] == pytest.approx(0.75)  # 3 perfect + 1 empty (Dice 0)
    assert seg["per_class"]["PS"]["hd"] == pytest.approx(25.0)  # (0 + 0 + 0 + 100) / 4


@pytest.mark.shared
def test_geometry_cli_reproduces_psfhs_dev_landmarks(psfhs_dev, tmp_path):
    res = _run("geometry", psfhs_dev / "labels", "--json", "--csv", tmp_path / "all.csv")
    assert res.exit_code == EXIT_OK, res.stderr
    got = {Path(d["file"]).name: d for d in json.loads(res.stdout)}
    expected = _rows(psfhs_dev / "landmarks.csv")
    assert len(got) == len(expected) == 658
    for row in expected:
        d = got[row["Filename"]]
        assert d["status"] == "ok"
        for k in ("PS1", "PS2", "FH1"):
            assert "({:g}, {:g})".format(*d["landmarks"][k]) == row[k], (row["Filename"], k)
        assert abs(d["aop_deg"] - float(row["AOP"])) <= 1e-6
        assert abs(d["hsd"] - float(row["HSD"])) <= 1e-6
    written = read_predictions_csv(tmp_path / "all.csv")
    assert sorted(written) == sorted(got)
