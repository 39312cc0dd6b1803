"""ONNX export: parity with torch, dynamic sizes, self-describing metadata, clear errors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from partus.config import load_config
from partus.errors import InputError
from partus.export import export_onnx, read_metadata
from partus.train.fit import fit


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = load_config("configs/smoke.yaml", ["train.epochs=1", "data.n_phantoms=16", "model.kwargs={features: 4}"])
    return fit(cfg, out, progress=False).checkpoint


def test_export_matches_torch_and_describes_itself(checkpoint, tmp_path):
    meta = export_onnx(checkpoint, tmp_path / "m.onnx")
    assert meta["max_abs_diff"] < 1e-4
    stored = read_metadata(tmp_path / "m.onnx")
    assert stored["model"] == "heatmap_unet" and stored["kind"] == "heatmap" and stored["input_size"] == 64
    assert stored["landmarks"] == ["PS1", "PS2", "FH1"]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": np.zeros((3, 1, 96, 64), np.float32)})[0]
    assert out.shape == (3, 3, 96, 64)  # dynamic batch and size, stride 1


def test_failed_parity_writes_nothing(checkpoint, tmp_path):
    with pytest.raises(RuntimeError, match="differs from torch"):
        export_onnx(checkpoint, tmp_path / "m.onnx", atol=-1.0)
    assert not (tmp_path / "m.onnx").exists() and not list(tmp_path.iterdir())


def test_read_metadata_errors(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        read_metadata(tmp_path / "x.onnx")
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Conv2d(1, 1, 1), torch.zeros(1, 1, 4, 4), str(plain), dynamo=False)
    with pytest.raises(InputError, match="not a model exported by partus"):
        read_metadata(plain)
