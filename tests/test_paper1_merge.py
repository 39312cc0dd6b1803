"""``scripts/paper1_average.py --merge``: figures measured on disjoint folds in different sessions, pooled by
scan counts, equal the figures of the pooled scans (up to the parts' rounding)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from partus.robustness import summarise

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("seed 0 alone", "seed 1 alone", "seed 2 alone", "three-model average")


def _script():
    spec = importlib.util.spec_from_file_location("paper1_average", ROOT / "scripts" / "paper1_average.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw(n: int, seed: int, missing: int = 0) -> dict:
    """Plain, one shift and mirrored predictions of ``n`` scans spread over the AoP bands, with a verdict."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(np.radians(70), np.radians(150), n)  # the AoP at PS1 = (0, 0), PS2 = (-40, 0)
    gt = np.stack([np.zeros((n, 2)), np.tile([-40.0, 0.0], (n, 1)), 60 * np.stack([np.cos(np.pi - t),
                   np.sin(np.pi - t)], 1)], 1)  # fmt: skip
    raw = {}
    for k, v in enumerate(("plain", "speckle", "mirrored")):
        pred = gt + rng.normal(0, 3 + k, gt.shape)
        pred[:missing] = np.nan
        raw[v] = (pred, gt, rng.random(n) > 0.1)
    return raw


def _result(raws: list[dict], folds: list[int]) -> dict:
    out = {"folds": folds, "members": ["a", "b", "c"]}
    for name in NAMES:
        joined = {v: tuple(np.concatenate([r[v][i] for r in raws]) for i in range(3)) for v in raws[0]}
        rep = summarise(joined)
        out[name] = {"plain": rep["plain"], "shift_mean": rep["shift_mean"], "mirrored": rep["mirrored"],
                     "hsd_mae": 2.0 + folds[0], "reasons": {"implausible symphysis length": len(folds)}}  # fmt: skip
    return out


@pytest.mark.parametrize("missing", [0, 4])
def test_merged_figures_are_those_of_the_pooled_scans(missing):
    merge = _script().merge
    a, b = _raw(90, 1, missing), _raw(40, 2, missing)
    merged = merge([_result([a], [0]), _result([b], [3])])
    pooled = _result([a, b], [0, 3])
    assert merged["folds"] == [0, 3] and merged["pooled_from"] == [[0], [3]]
    for name in NAMES:
        m, p = merged[name], pooled[name]
        for variant in ("plain", "mirrored"):
            assert m[variant]["n"] == p[variant]["n"] and m[variant]["missing"] == p[variant]["missing"]
            assert m[variant]["aop_median"] is None  # not poolable from the parts
            keys = ["mre", "fh1", "aop_mae", "aop_bias", "flagged"]
            keys += ["aop_mae_kept", "aop_mae_flagged"] if not missing else []  # weighted exactly without missing
            for key in keys:
                assert m[variant][key] == pytest.approx(p[variant][key], abs=2e-3), (variant, key)
        for mb, pb in zip(m["plain"]["bands"], p["plain"]["bands"], strict=True):
            assert mb["band"] == pb["band"] and mb["n"] == pb["n"]
            assert mb["mae"] == pytest.approx(pb["mae"], abs=2e-3) and mb["bias"] == pytest.approx(pb["bias"], abs=2e-3)
        if not missing:  # the parts keep only the suite's mean, weighted by scans (not by scans with points)
            assert m["shift_mean"]["aop_mae"] == pytest.approx(p["shift_mean"]["aop_mae"], abs=2e-3)
        assert m["hsd_mae"] == pytest.approx((90 * 2.0 + 40 * 5.0) / 130, abs=1e-3)
        assert m["reasons"] == {"implausible symphysis length": 2}


def test_parts_sharing_a_fold_are_refused():
    r = _result([_raw(10, 0)], [1])
    with pytest.raises(ValueError, match="share folds"):
        _script().merge([r, r])
