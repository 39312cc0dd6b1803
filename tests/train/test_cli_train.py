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
    assert "2-fold grouped CV on 24 images" in res.stdout  # the protocol of the config (train.split)
    assert ("shift_aware" in summary) == (f"{tmp_path}/report/shift_aware.md" in res.stdout)
    for f in ("predictions.csv", "report/summary.json", "report/landmark_errors.png", "fold0/fold.json"):
        assert (tmp_path / f).is_file(), f
    stamp = (tmp_path / "fold0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    again = runner.invoke(app, args, catch_exceptions=False)  # finished folds are reused, not retrained
    assert again.exit_code == EXIT_OK
    assert (tmp_path / "fold0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "cv_summary.json").read_text())["landmarks"] == summary["landmarks"]
    marker = tmp_path / "fold0" / "fold.json"  # a fold finished before an option existed is still reused
    done = json.loads(marker.read_text())
    del done["config"]["data"]["augment"]["p_fan"]
    marker.write_text(json.dumps(done))
    assert runner.invoke(app, args, catch_exceptions=False).exit_code == EXIT_OK
    assert (tmp_path / "fold0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    done["config"]["train"]["epochs"] = 3  # a changed setting is not: the fold is trained again
    marker.write_text(json.dumps(done))
    assert runner.invoke(app, args, catch_exceptions=False).exit_code == EXIT_OK
    assert (tmp_path / "fold0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns != stamp


def test_bad_config_override_is_a_usage_error(tmp_path):
    res = runner.invoke(app, ["train", "configs/smoke.yaml", "--set", "train.epoch=2"])
    assert res.exit_code == EXIT_USAGE
    assert "train.epoch" in res.stderr


def test_cv_help_shows_split_and_no_shift():
    res = runner.invoke(app, ["cv", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == EXIT_OK
    text = " ".join(res.output.split())
    assert "--split" in text and "grouped|blocks" in text and "--no-shift" in text


def test_cv_names_the_protocol_and_prints_the_shift_aware_table(tmp_path, monkeypatch):
    import partus.train.cv

    seen = {}

    def fake(cfg, out_dir, *, folds, devices, shift):
        seen.update(split=cfg.train.split, shift=shift)
        lm = {"mre": 3.0, "per_landmark": {"PS1": 3.0, "PS2": 2.0, "FH1": 4.0}, "sdr": {"5": 0.8, "10": 0.95},
              "aop": {"mae": 4.2, "median_ae": 3.1}, "n_missing": 0}  # fmt: skip
        summary = {"landmarks": lm, "n_images": 24, "seconds": 6.0}
        if shift:
            summary["shift_aware"] = {"plain": {"aop_mae": 4.25, "mre": 3.0},
                                      "shift_mean": {"aop_mae": 6.5, "mre": None},
                                      "mirrored": {"aop_mae": None, "mre": 9.75}}  # fmt: skip
        return summary

    monkeypatch.setattr(partus.train.cv, "cross_validate", fake)
    args = ["cv", "configs/smoke.yaml", "--folds", "2", "--out", str(tmp_path)]
    res = runner.invoke(app, [*args, "--split", "blocks"], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert res.exit_code == EXIT_OK, res.output
    assert seen == {"split": "blocks", "shift": True}
    assert "2-fold blocks CV on 24 images" in res.stdout
    rows = {line.split("│")[1].strip(): line for line in res.stdout.splitlines() if line.count("│") >= 3}
    assert "4.25" in rows["plain"] and "6.50" in rows["shift-suite mean"] and "–" in rows["shift-suite mean"]
    assert "9.75" in rows["mirrored"] and "–" in rows["mirrored"]
    assert f"{tmp_path}/report/shift_aware.md" in " ".join(res.stdout.split())
    res = runner.invoke(app, [*args, "--no-shift"], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert res.exit_code == EXIT_OK, res.output
    assert seen["shift"] is False and "shift_aware.md" not in res.stdout
    assert "2-fold grouped CV" in res.stdout
    res = runner.invoke(app, [*args, "--split", "diagonal"])
    assert res.exit_code == EXIT_USAGE
