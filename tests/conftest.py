"""Shared test fixtures. Tests that need the real datasets in ``<repo>/../shared`` skip without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# CI runs derandomized (reproducible); locally hypothesis explores new examples on every run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PARTUS_SHARED", REPO.parent / "shared"))
PSFHS_DEV = SHARED / "data" / "psfhs-dev"
IUGC2024_MASKS = SHARED / "data" / "iugc2024-sample-masks"


def pytest_collection_modifyitems(config, items):
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real datasets not available ({SHARED} is absent)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def psfhs_dev() -> Path:
    if not PSFHS_DEV.is_dir():
        pytest.skip(f"{PSFHS_DEV} is absent")
    return PSFHS_DEV


@pytest.fixture(scope="session")
def iugc2024_masks() -> Path:
    if not IUGC2024_MASKS.is_dir():
        pytest.skip(f"{IUGC2024_MASKS} is absent")
    return IUGC2024_MASKS


@pytest.fixture
def shared_data() -> Path:
    """The ``shared/data`` folder; the test is skipped when it is absent."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"shared data not found at {data}")
    return data


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one torch thread (and do not fight a busy machine for cores); for
    modules that declare ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
