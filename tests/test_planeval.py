"""Scoring the standard_plane column: labels from IUGC 2024 frame names or a CSV, the official metrics,
rows without a score, and the evaluate command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from partus.cli import EXIT_OK, EXIT_USAGE, app
from partus.errors import InputError
from partus.io import write_predictions_csv
from partus.measurement import Measurement
from partus.planeval import evaluate_planes, plane_labels_from_names, read_plane_labels


def _pred(tmp_path, scores: dict[str, float | None]):
    rows = [(n, Measurement.not_measurable("x", extras={} if p is None else {"standard_plane": p}))
            for n, p in scores.items()]  # fmt: skip
    return write_predictions_csv(tmp_path / "p.csv", rows)


def test_labels_from_iugc2024_names():
    names = ["v1_0_6.png", "v1_9_3.png", "v2_19_4.png", "v2_29_5.png"]
    assert plane_labels_from_names(names) == {"v1_0_6.png": 1, "v1_9_3.png": 0, "v2_19_4.png": 0, "v2_29_5.png": 0}
    with pytest.raises(InputError, match="IUGC 2024 frame name"):
        plane_labels_from_names(["scan.png"])


def test_metrics_against_a_hand_count(tmp_path):
    # positives 0.9, 0.8, 0.3; negatives 0.6, 0.1, none (no score: predicted non-standard)
    path = _pred(tmp_path, {"a_0_6.png": 0.9, "a_1_6.png": 0.8, "a_2_6.png": 0.3,
                            "b_0_5.png": 0.6, "b_1_3.png": 0.1, "b_2_4.png": None})  # fmt: skip
    m = evaluate_planes(path)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 2) and m["accuracy"] == pytest.approx(4 / 6)
    # AUC: of 9 positive/negative pairs the positive scores higher in 8 (all but 0.3 vs 0.6)
    assert m["auc"] == pytest.approx(8 / 9) and m["n_without_score"] == 1
    precision, recall = 2 / 3, 2 / 3
    assert m["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    expected_mcc = (2 * 2 - 1 * 1) / np.sqrt(3 * 3 * 3 * 3)
    assert m["mcc"] == pytest.approx(expected_mcc)


def test_labels_csv_and_errors(tmp_path):
    path = _pred(tmp_path, {"x.png": 0.7, "y.png": 0.2, "z.png": 0.4})
    (tmp_path / "l.csv").write_text("Filename,standard_plane\nx.png,1\ny.png,0\n")
    m = evaluate_planes(path, read_plane_labels(tmp_path / "l.csv"))
    assert m["n"] == 2 and m["accuracy"] == 1.0 and m["n_unlabelled"] == 1
    (tmp_path / "bad.csv").write_text("Filename,standard_plane\nx.png,yes\n")
    with pytest.raises(InputError, match="0 or 1"):
        read_plane_labels(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="no plane head"):
        evaluate_planes(_pred(tmp_path, {"a_0_6.png": None}))


def test_evaluate_command(tmp_path):
    path = _pred(tmp_path, {"a_0_6.png": 0.9, "b_0_3.png": 0.2})
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--pred", str(path), "--planes", "--json"])
    assert res.exit_code == EXIT_OK, res.output
    assert json.loads(res.stdout)["planes"]["accuracy"] == 1.0
    res = runner.invoke(app, ["evaluate", "--pred", str(path)])
    assert res.exit_code == EXIT_USAGE and "--planes" in res.output
