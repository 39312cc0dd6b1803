"""Fixtures of the refiner tests: one small network trained with a refiner on phantoms, once per module."""

from __future__ import annotations

import pytest
from _helpers import REFINE_SETTINGS

from partus.config import load_config
from partus.train.fit import fit


@pytest.fixture(scope="module")
def refine_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("refine_run")
    cfg = load_config("configs/smoke.yaml", ["train.epochs=1", "data.n_phantoms=16", "model.kwargs={features: 4}",
                                             *REFINE_SETTINGS])  # fmt: skip
    return fit(cfg, out, progress=False)
