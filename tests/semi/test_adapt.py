"""``partus adapt`` end to end on the bundled scans, its refusal of scans that are not intrapartum, the
shipped trainable weights it starts from, and self-training rounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _helpers import SAMPLE_IMAGES
from typer.testing import CliRunner

from partus.cli import app
from partus.config import load_config
from partus.data.records import load_psfhs
from partus.data.shift import apply_shift
from partus.data.unlabelled import Scan
from partus.errors import InputError
from partus.members import OnnxModel
from partus.models import create_model
from partus.predict import DEFAULT_MODELS, Predictor
from partus.preprocess import resize_image, to_input
from partus.refine import refiner_path
from partus.train.adapt import AdaptConfig, adapt, load_trainable

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SAMPLES = SAMPLE_IMAGES.parent


@pytest.fixture(scope="module")
def records():
    return load_psfhs(SAMPLES)


@pytest.fixture(scope="module")
def site(records):
    """The bundled scans plain, mirrored and with lower gain: 12 unlabelled scans of a 'site'."""
    scans = []
    for i, r in enumerate(records):
        scans.append(Scan(r.name, r.image, r.name))
        scans.append(Scan(f"{r.name}_m", np.ascontiguousarray(r.image[:, ::-1]), r.name))
        scans.append(Scan(f"{r.name}_g", apply_shift("gain_low", r.image, r.points, index=i).image, r.name))
    return scans


def test_trainable_weights_are_the_shipped_network(records):
    """weights/multitask.pt reproduces the bundled ONNX: adapt starts from the shipped model."""
    cfg, state = load_trainable()
    model = create_model(cfg["model"]["name"], **cfg["model"]["kwargs"]).eval()
    model.load_state_dict(state)
    onnx = OnnxModel(DEFAULT_MODELS[0], threads=1)
    x = to_input(np.stack([resize_image(r.image, onnx.size) for r in records]))
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    ref = onnx(x, False)
    seg = out["seg"].softmax(1).numpy()
    assert np.abs(seg - ref["seg"]).max() < 1e-4  # float32: ONNX Runtime vs torch rounding only
    assert np.abs(torch.sigmoid(out["cls"]).numpy() - ref["cls"]).max() < 1e-3


@pytest.mark.slow
def test_adapt_end_to_end(site, tmp_path):
    report = adapt(site, tmp_path, config=AdaptConfig(steps=2, min_kept=2, min_kept_share=0.1))
    assert report["scans"] == 12 and 2 <= report["pseudo_labels"]["kept"] <= 12
    before = Predictor()
    first = [before.predict_one(s.image).measurement for s in site]
    assert report["before"]["measured"] == sum(m.ok for m in first)
    # the adapted model: a folder usable as --model, with the plane head, measuring the scans
    adapted = Predictor(tmp_path)
    assert adapted.has_plane and adapted.has_orientation
    shipped_refiner = refiner_path(DEFAULT_MODELS[0])  # the symphysis refiner goes with the network, unchanged
    assert (adapted.models[0].refiner is not None) == shipped_refiner.is_file()
    if shipped_refiner.is_file():
        assert refiner_path(tmp_path / "multitask.onnx").read_bytes() == shipped_refiner.read_bytes()
    after = [adapted.predict_one(s.image).measurement for s in site]
    assert report["after"]["measured"] == sum(m.ok for m in after)
    ok = [(a, b) for a, b in zip(first, after, strict=True) if a.ok and b.ok]
    assert ok and max(abs(a.aop - b.aop) for a, b in ok) < 10  # two steps at a small rate: nearly the same
    saved = json.loads((tmp_path / "adapt_report.json").read_text())
    assert saved["after"] == report["after"]
    assert "| measured (not flagged) |" in (tmp_path / "adapt_report.md").read_text()
    assert (tmp_path / "adapt_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "pseudo" / "pseudo_labels.csv").is_file()
    res = CliRunner().invoke(app, ["predict", str(SAMPLE_IMAGES), "--model", str(tmp_path), "--out",
                                   str(tmp_path / "rows.csv")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "rows.csv").read_text().splitlines()) == 5


def test_adapt_refuses_scans_that_are_not_intrapartum(tmp_path):
    rng = np.random.default_rng(0)
    noise = [Scan(f"n{i}", rng.integers(0, 255, (256, 256), dtype=np.uint8), f"n{i}") for i in range(6)]
    with pytest.raises(InputError, match=r"only 0 of 6 scans pass .* commonest rejection: verdict"):
        adapt(noise, tmp_path, config=AdaptConfig(steps=1, min_kept=2))
    assert not (tmp_path / "multitask.onnx").exists()


def test_adapt_cli_refusal_is_a_usage_error(tmp_path):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"blank{i}.png"), np.full((200, 200), 40, np.uint8))
    res = CliRunner().invoke(app, ["adapt", str(tmp_path), "--out", str(tmp_path / "out"), "--min-kept", "2"])
    assert res.exit_code == 2
    assert "pass the pseudo-label checks" in res.output


@pytest.mark.slow
def test_self_training_rounds(records, site, tmp_path):
    """Two progressive rounds from a teacher near the shipped network: round 1 labels the scans and uses
    the surest half of the kept labels, round 2 (labelled by round 1's student, which here starts from
    random weights and trains two steps: it keeps nothing) all of its kept labels; a repeated run reuses
    the finished rounds."""
    from partus.train.fit import fit
    from partus.train.semi import self_train

    cfg_dict, state = load_trainable()
    cfg = load_config(None, [f"model.name={cfg_dict['model']['name']}",
                             f"model.kwargs={json.dumps(cfg_dict['model']['kwargs'])}", "model.encoder_weights=null",
                             "data.input_size=128", "train.max_steps=2", "train.epochs=100", "train.lr=1e-6",
                             "train.batch_size=4", "train.threads=1", "semi.rounds=2"])  # fmt: skip
    teacher = fit(cfg, tmp_path / "teacher", records=records[:2], init=state, progress=False).checkpoint
    res, info = self_train(cfg, tmp_path / "semi", records[:2], site, teacher=teacher, progress=False)
    r1, r2 = info["rounds"]
    assert r1["kept"] >= 2 and r1["used"] == round(0.5 * r1["kept"]) and r2["used"] == r2["kept"]
    assert len(load_psfhs(tmp_path / "semi" / "round1" / "pseudo")) == r1["kept"]  # the psfhs-dev layout
    assert (tmp_path / "semi" / "round2" / "pseudo" / "pseudo_labels.csv").is_file()
    stamp = res.checkpoint.stat().st_mtime
    again, info2 = self_train(cfg, tmp_path / "semi", records[:2], site, teacher=teacher, progress=False)
    assert info2 == info and again.checkpoint.stat().st_mtime == stamp
