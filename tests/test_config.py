"""Configs: every shipped YAML validates; overrides; errors name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from partus.config import Config, load_config, save_config
from partus.errors import InputError
from partus.models import list_models

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate_and_name_registered_models(path):
    cfg = load_config(path)
    assert cfg.model.name in list_models()
    assert cfg.data.input_size % 16 == 0


def test_overrides_and_round_trip(tmp_path):
    cfg = load_config(CONFIGS[0], ["train.epochs=3", "model.kwargs={features: 8}", "data.augment.p_hflip=0.5"])
    assert cfg.train.epochs == 3 and cfg.model.kwargs == {"features": 8} and cfg.data.augment.p_hflip == 0.5
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again.model_dump() == cfg.model_dump()  # base_dir is not saved: it is where the file is
    assert "base_dir" not in (tmp_path / "c.yaml").read_text()


def test_relative_data_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {root: data/x}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.resolve(cfg.data.root) == (tmp_path / "data" / "x").resolve()


@pytest.mark.parametrize(
    ("text", "overrides", "match"),
    [
        ("train: {epoch: 3}\n", [], r"train\.epoch: Extra inputs are not permitted"),
        ("train: {optimizer: lamb}\n", [], r"train\.optimizer"),
        ("- a\n- b\n", [], "must be a YAML mapping"),
        ("{}", ["train.epochs"], "expected key=value"),
        ("train: [\n", [], "cannot read the config"),
    ],
)
def test_bad_configs_are_clear_errors(tmp_path, text, overrides, match):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(InputError, match=match):
        load_config(tmp_path / "c.yaml", overrides)


def test_defaults_without_a_file():
    assert load_config().model_dump() == Config().model_dump()


def test_the_shipped_models_cross_validation_is_of_its_own_config():
    """The model card quotes the blocks CV that scripts/ship_model.py reads (a sweep job) for the model
    trained by configs/multitask.yaml: the job must be that config with no overrides."""
    import importlib.util

    from partus.config import load_config

    root = Path(__file__).resolve().parents[1]

    def script(name: str):
        spec = importlib.util.spec_from_file_location(name, root / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    sweep, ship = script("sweep"), script("ship_model")
    mode, config, overrides = sweep.PLAN[ship.CV_DIR.name]
    assert (mode, config, overrides) == ("cv", "configs/multitask.yaml", [])
    shipped = load_config(root / config)
    assert shipped.train.split == "blocks" and shipped.model.name == "multitask_net"
    fast = load_config(root / config, sweep.FAST)  # the sweep changes only how often it validates and threads
    assert fast.model_dump(exclude={"train"}) == shipped.model_dump(exclude={"train"})
    assert fast.train.model_dump(exclude={"val_every", "threads"}) == shipped.train.model_dump(
        exclude={"val_every", "threads"}
    )
