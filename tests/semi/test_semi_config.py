"""Pseudo-labels in training: a ``partus pseudo-label`` folder joins the training scans only, with its
loss weight; self-training settings are refused before any training; a folder of models is a model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _helpers import SAMPLE_IMAGES
from typer.testing import CliRunner

from partus.cli import app
from partus.config import load_config
from partus.data.dataset import LandmarkDataset
from partus.data.records import load_phantoms, load_psfhs
from partus.data.unlabelled import Scan
from partus.errors import InputError
from partus.predict import Predictor, load_model
from partus.pseudo import pseudo_label, write_pseudo_labels
from partus.train.fit import fit, load_pseudo_labels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pseudo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pseudo")
    scans = [Scan(r.name, r.image, r.name) for r in load_psfhs(SAMPLE_IMAGES.parent)]
    counts = write_pseudo_labels(root, pseudo_label(Predictor(), scans))
    assert counts["kept"] >= 2
    return root


def test_pseudo_labels_train_and_never_validate(pseudo_root, tmp_path):
    loaded = load_pseudo_labels(pseudo_root, 0.5)
    assert loaded and all(r.weight == 0.5 and r.name.startswith("pseudo:") for r in loaded)
    cfg = load_config(None, [
        "data.source=phantoms", "data.n_phantoms=12", "data.phantom_size=64", "data.input_size=64",
        "model.name=heatmap_unet", "model.kwargs={features: 4}", "train.max_steps=1", "train.epochs=1",
        "train.batch_size=4", "train.threads=1", "train.folds=3", "train.early_stopping_patience=0",
        f"semi.pseudo_root={pseudo_root}",
        "semi.weight=0.25",
    ])  # fmt: skip
    with pytest.warns(UserWarning, match="copy or a clip-mate"):
        res = fit(cfg, tmp_path / "run", fold=0, records=load_phantoms(12, size=64), progress=False)
    pseudo = [r for r in res.train_records if r.name.startswith("pseudo:")]
    assert len(pseudo) == len(loaded) and not any(r.name.startswith("pseudo:") for r in res.val_records)
    ds = LandmarkDataset(res.train_records, input_size=64)
    expected = [0.25 if r.name.startswith("pseudo:") else 1.0 for r in res.train_records]
    np.testing.assert_array_equal(ds.weights, np.float32(expected))
    assert ds[len(ds) - 1]["weight"].item() == pytest.approx(0.25)


def test_a_folder_that_is_not_pseudo_labels_is_refused(tmp_path):
    with pytest.raises(InputError, match="not a folder written by partus pseudo-label"):
        load_pseudo_labels(tmp_path, 0.5)


def test_self_training_settings_are_refused_before_training(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {source: phantoms, n_phantoms: 8}\nsemi: {rounds: 1}\n")
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "needs semi.unlabelled" in res.output
    res = runner.invoke(app, ["train", str(cfg), "--fold", "0", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "train on all the data" in res.output
    res = runner.invoke(app, ["train", str(cfg), "--set", "semi.unlabelled=[nowhere]", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "no such file or folder" in " ".join(res.output.split())
    res = runner.invoke(app, ["train", str(cfg), "--set", "semi.fractions=[0.5, 1.0]"])
    assert res.exit_code == 2 and "one per round" in res.output
    assert not (tmp_path / "r").exists()  # nothing trained


def test_a_folder_of_models(tmp_path):
    with pytest.raises(InputError, match="holds no .onnx model"):
        Predictor(tmp_path)
    import shutil

    from partus.predict import DEFAULT_MODELS
    from partus.refine import refiner_path

    shutil.copy(DEFAULT_MODELS[0], tmp_path / "a.onnx")
    if refiner_path(DEFAULT_MODELS[0]).is_file():  # the network's refiner goes with it; it is not a member
        shutil.copy(refiner_path(DEFAULT_MODELS[0]), refiner_path(tmp_path / "a.onnx"))
    p = Predictor(tmp_path)
    assert len(p.models) == 1 and p.models[0].path == tmp_path / "a.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = SAMPLE_IMAGES / "03744.png"
        m = p.measure(first)
        assert m.ok and m.aop == pytest.approx(load_model().measure(first).aop, abs=1e-9)
