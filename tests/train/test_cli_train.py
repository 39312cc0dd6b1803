"""partus train / partus cv on tiny phantom runs: outputs, resume at fold level, clear config errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from partus.cli import EXIT_OK, EXIT_USAGE, app

runner = CliRunner()
TINY = ["--set", "data.n_phantoms=24", "--set", "model.kwargs={features: 4}", "--set", "train.epochs=2"]


def test_train_writes_checkpoint_config_and_metrics(tmp_path):
    res = runner.invoke(app, ["train", "configs/smoke.yaml", "--out", str(tmp_path), *TINY], catch_exceptions=False)
    assert res.exit_code == EXIT_OK, res.output
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "name: smoke" in (tmp_path / "config.yaml").read_text()
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert "train_loss" in header
    assert str(tmp_path / "checkpoints" / "last.ckpt") in res.stdout


def test_cv_reports_and_reuses_finished_folds(tmp_path):
    args = ["cv", "configs/smoke.yaml", "--folds", "2", "--out", str(tmp_path), *TINY]
    res = runner.invoke(app, args, catch_exceptions=False)
    assert res.exit_code == EXIT_OK, res.output
    summary = json.loads((tmp_path / "cv_summary.json").read_text())
    assert summary["folds"] == 2 and summary["n_images"] == 24
    assert summary["landmarks"]["n_images"] == 24
    assert [f["fold"] for f in summary["per_fold"]] == [0, 1]
    for f in ("predictions.csv", "report/summary.json", "report/landmark_errors.png", "fold0/fold.json"):
        assert (tmp_path / f).is_file(), f
    stamp = (tmp_path / "fold0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    again = runner.invoke(app, args, catch_exceptions=False)  # finished folds are reused, not retrained
    assert again.exit_code == EXIT_OK
    assert (tmp_path / "fold0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "cv_summary.json").read_text())["landmarks"] == summary["landmarks"]


def test_bad_config_override_is_a_usage_error(tmp_path):
    res = runner.invoke(app, ["train", "configs/smoke.yaml", "--set", "train.epoch=2"])
    assert res.exit_code == EXIT_USAGE
    assert "train.epoch" in res.stderr
