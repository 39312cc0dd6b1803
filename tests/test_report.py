"""Report files: strict JSON summary, per-image CSV, legible non-blank PNGs, atomic writes."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from partus.evaluate import evaluate_landmarks, evaluate_segmentation
from partus.report import write_report


@pytest.fixture(scope="module")
def landmark_report():
    rng = np.random.default_rng(0)
    gt = np.stack([rng.uniform([150, 90], [170, 110], (40, 2)),  # PS1
                   rng.uniform([90, 70], [110, 90], (40, 2)),  # PS2
                   rng.uniform([190, 150], [220, 190], (40, 2))], axis=1)  # FH1  # fmt: skip
    pred = gt + rng.normal(0, 4, gt.shape)
    pred[3] = np.nan  # one image not measurable
    hsd_gt = rng.uniform(40, 80, 40)
    return evaluate_landmarks(
        pred, gt, names=[f"img{i:02d}" for i in range(40)], pred_hsd=hsd_gt + rng.normal(0, 2, 40), gt_hsd=hsd_gt
    )


@pytest.fixture(scope="module")
def segmentation_report():
    rng = np.random.default_rng(1)
    preds, gts = [], []
    for _ in range(40):
        g = np.zeros((64, 64), np.uint8)
        g[10:25, 20:40] = 1
        cv2.circle(g, (32, 45), 14, 2, -1)
        dy, dx = rng.integers(-3, 4, 2)
        preds.append(np.roll(g, (dy, dx), axis=(0, 1)))
        gts.append(g)
    return evaluate_segmentation(preds, gts, names=[f"img{i:02d}" for i in range(40)])


def _assert_real_png(path):
    assert path.is_file() and path.stat().st_size > 5_000, path
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 300
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10, f"{path.name} is (nearly) a single colour"


def test_full_report(tmp_path, landmark_report, segmentation_report):
    out = tmp_path / "nested" / "report"
    files = write_report([landmark_report, segmentation_report], out)
    assert set(files) == {"summary", "per_image", "landmark_errors", "aop_bland_altman", "hsd_bland_altman",
                          "dice_boxplot"}  # fmt: skip
    for key in ("landmark_errors", "aop_bland_altman", "hsd_bland_altman", "dice_boxplot"):
        _assert_real_png(files[key])

    def no_nan(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    summary = json.loads(files["summary"].read_text(encoding="utf-8"), parse_constant=no_nan)
    lm = summary["landmarks"]
    assert lm["n_images"] == 40 and lm["n_missing"] == 1 and lm["aop"]["n"] == 39
    assert lm["mre"] == pytest.approx(landmark_report.summary["mre"])
    assert summary["segmentation"]["n_images"] == 40
    expected = segmentation_report.score(landmark_report.summary["aop"]["mae"])
    assert summary["fhpsaop2023_score"] == pytest.approx(expected)

    with files["per_image"].open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 and rows[0]["name"] == "img00"
    assert {"err_PS1", "err_FH1", "aop_error", "hsd_error", "dice_PS", "hd_ALL", "asd_FH"} <= set(rows[0])
    assert rows[3]["missing"] == "True" and rows[3]["err_PS1"] == "" and rows[3]["dice_FH"] != ""
    assert float(rows[0]["err_PS2"]) == landmark_report.errors[0, 1]  # full precision round-trip
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in files.values())  # no temp files


def test_landmark_only_report_has_no_dice_plot(tmp_path, landmark_report):
    files = write_report(landmark_report, tmp_path)
    assert "dice_boxplot" not in files and not (tmp_path / "dice_boxplot.png").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"landmarks"}


def test_report_with_all_predictions_missing(tmp_path):
    gt = np.array([[[100.0, 100.0], [60.0, 100.0], [130.0, 140.0]]] * 2)
    rep = evaluate_landmarks(np.full_like(gt, np.nan), gt)
    files = write_report(rep, tmp_path)
    summary = json.loads(files["summary"].read_text())
    assert summary["landmarks"]["mre"] is None and summary["landmarks"]["n_missing"] == 2
    assert files["aop_bland_altman"].stat().st_size > 0


def test_write_report_rejects_other_objects(tmp_path, landmark_report):
    with pytest.raises(ValueError, match="LandmarkReport and/or a SegmentationReport, got"):
        write_report({"mre": 1.0}, tmp_path)
    with pytest.raises(ValueError, match=r"\['LandmarkReport', 'LandmarkReport'\]"):
        write_report([landmark_report, landmark_report], tmp_path)


def test_failed_plot_leaves_previous_file_and_no_temp(tmp_path, landmark_report, monkeypatch):
    files = write_report(landmark_report, tmp_path)
    before = files["landmark_errors"].read_bytes()

    def broken_savefig(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(landmark_report, tmp_path)
    assert files["landmark_errors"].read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files.values())
