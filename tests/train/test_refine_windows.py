"""Where a refiner's windows sit (``refine.centre``), how its points replace or blend with the first estimates
(``refine.blend``), and its confidence (the peak mass of each map it reads) in the verdict: each worked out by
hand on stand-in sessions whose maps have all their mass on known grid cells."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import REFINE_SETTINGS, SpikeSession, without_refiner

from partus.config import load_config
from partus.data.records import load_phantoms
from partus.decode import to_grid_coords
from partus.errors import InputError
from partus.export import export_onnx, read_metadata
from partus.predict import Predictor
from partus.refine import Refiner, refiner_path
from partus.train.fit import fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_refined_point_comes_back_where_worked_out_by_hand(refine_run, tmp_path):
    """A non-square scan (320 x 160) at work 128, window 48, grid 24: every step of the mapping by hand."""
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    refiner.session = SpikeSession((20, 12))
    scan = np.zeros((160, 320), np.uint8)
    start = np.array([[159.5, 79.5], [79.5, 39.5], [10.0, 20.0]])  # working pixels (63.5, 63.5), (31.5, 31.5)
    got = refiner([scan], [start])[0]
    # window centre (47.5, 47.5); cell (20, 12) -> crop (40.5, 24.5) -> work (64.5, 48.5) -> scan:
    np.testing.assert_allclose(got[0], [(64.5 + 0.5) * 2.5 - 0.5, (48.5 + 0.5) * 1.25 - 0.5], atol=1e-6)
    np.testing.assert_array_equal(got[1:], start[1:])
    nan = np.full((3, 2), np.nan)
    assert np.isnan(refiner([scan], [nan])[0]).all()  # no first estimate: nothing to refine


def test_landmark_centred_windows_refine_each_point_in_its_own(refine_run, tmp_path):
    """``centre: landmark``: one window per refined point, centred on its own first estimate, each point read
    from its own map (same scan as above; PS1's spike sits 17 px right of and 1 px below a window's centre,
    PS2's 15 px left of and 19 px above it, in working pixels)."""
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    assert refiner.centre == "midpoint"  # the default, and that of refiners exported before the setting
    refiner.session, refiner.centre, refiner.refines = SpikeSession((20, 12), (4, 2)), "landmark", [0, 1]
    refiner.blend = [1.0, 1.0]
    scan = np.zeros((160, 320), np.uint8)
    start = np.array([[159.5, 79.5], [79.5, 39.5], [10.0, 20.0]])  # working pixels (63.5, 63.5), (31.5, 31.5)
    got = refiner([scan, scan], [start, start + 2.0])
    # PS2's cell (4, 2) -> crop (8.5, 4.5), i.e. (-15, -19) from the centre (23.5, 23.5)
    # PS1: work (63.5 + 17, 63.5 + 1) = (80.5, 64.5); PS2: (31.5 - 15, 31.5 - 19) = (16.5, 12.5); then to the scan
    np.testing.assert_allclose(got[0][0], [(80.5 + 0.5) * 2.5 - 0.5, (64.5 + 0.5) * 1.25 - 0.5], atol=1e-6)
    np.testing.assert_allclose(got[0][1], [(16.5 + 0.5) * 2.5 - 0.5, (12.5 + 0.5) * 1.25 - 0.5], atol=1e-6)
    np.testing.assert_array_equal(got[0][2], start[2])
    np.testing.assert_allclose(got[1][:2], got[0][:2] + 2.0, atol=1e-6)  # points 2 px further: windows follow


def test_blend_averages_a_refined_point_with_the_first_estimate(refine_run, tmp_path):
    """``refines: [0, 1]``, ``blend: [1, 0.5]``: PS1 replaced, PS2 half-way between its first estimate and the
    refined point (same scan and window as above; PS2's cell (4, 2) -> crop (8.5, 4.5) -> work (32.5, 28.5)
    -> scan (82, 35.75), averaged with (79.5, 39.5))."""
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    assert refiner.blend == [1.0]  # exported without a blend: the refined points replace the first ones
    refiner.session, refiner.refines, refiner.blend = SpikeSession((20, 12), (4, 2)), [0, 1], [1.0, 0.5]
    scan = np.zeros((160, 320), np.uint8)
    start = np.array([[159.5, 79.5], [79.5, 39.5], [10.0, 20.0]])
    got = refiner([scan], [start])[0]
    np.testing.assert_allclose(got[0], [(64.5 + 0.5) * 2.5 - 0.5, (48.5 + 0.5) * 1.25 - 0.5], atol=1e-6)
    np.testing.assert_allclose(got[1], [(79.5 + 82.0) / 2, (39.5 + 35.75) / 2], atol=1e-6)
    np.testing.assert_array_equal(got[2], start[2])
    rc = load_config("configs/smoke.yaml", ["refine.refines=[0, 1]", "refine.blend=[1.0, 0.5]"]).refine
    assert rc.blend == [1.0, 0.5]
    for bad in ("[1.0]", "[1.0, 0.0]", "[1.0, 1.5]"):
        with pytest.raises(InputError, match="blend"):
            load_config("configs/smoke.yaml", ["refine.refines=[0, 1]", f"refine.blend={bad}"])


def test_a_refiner_exported_before_blend_replaces_its_points(refine_run, tmp_path, monkeypatch):
    """Metadata without ``blend`` (refiners exported before it existed): the refined points replace the first
    estimates exactly (same scan and window as above)."""
    import partus.export as export

    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    real = export.open_model

    def without_blend(*args, **kwargs):
        session, meta = real(*args, **kwargs)
        return session, {k: v for k, v in meta.items() if k != "blend"}

    monkeypatch.setattr(export, "open_model", without_blend)
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    assert "blend" not in refiner.meta and refiner.blend == [1.0]
    refiner.session = SpikeSession((20, 12))
    scan = np.zeros((160, 320), np.uint8)
    start = np.array([[159.5, 79.5], [79.5, 39.5], [10.0, 20.0]])
    got = refiner([scan], [start])[0]
    assert got[0].tolist() == [(64.5 + 0.5) * 2.5 - 0.5, (48.5 + 0.5) * 1.25 - 0.5]  # exactly: no blending
    np.testing.assert_array_equal(got[1:], start[1:])


def test_refiner_metadata_is_checked_when_loaded(refine_run, tmp_path, monkeypatch):
    import partus.export as export

    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    real = export.open_model
    for change, match in [({"blend": [1.0, 0.5]}, "blend"), ({"blend": [0.0]}, "blend"),
                          ({"refines": [2]}, "refines"), ({"refines": []}, "refines")]:  # fmt: skip
        monkeypatch.setattr(
            export, "open_model", lambda *a, c=change, **k: (real(*a, **k)[0], {**real(*a, **k)[1], **c})
        )
        with pytest.raises(InputError, match=match):
            Refiner(refiner_path(tmp_path / "m.onnx"))


def test_a_box_window_holds_all_three_points_and_refines_them(refine_run, tmp_path):
    """``centre: box``: one window on the centre of the three first estimates' bounding box; each refined
    point read from its own map (working pixels: PS1 (63.5, 63.5), PS2 (31.5, 31.5), FH1 (4.5, 41.5), so the
    box spans x 4.5..63.5 and y 31.5..63.5 and its centre is (34, 47.5))."""
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    refiner.session, refiner.centre, refiner.n_points = SpikeSession((20, 12), (4, 2), (0, 23)), "box", 3
    refiner.refines = [0, 1, 2]
    refiner.blend = [1.0] * 3
    scan = np.zeros((160, 320), np.uint8)
    start = np.array([[159.5, 79.5], [79.5, 39.5], [12.0, 52.0]])  # FH1 -> work ((12.5 / 2.5) - 0.5, ...)
    got = refiner([scan], [start])[0]
    # window centre crop (23.5, 23.5) on work (34, 47.5); cell (x, y) -> crop (2x + 0.5, 2y + 0.5)
    # PS1 (40.5, 24.5) -> work (51, 48.5); PS2 (8.5, 4.5) -> (19, 28.5); FH1 (0.5, 46.5) -> (11, 70.5)
    for k, (wx, wy) in enumerate([(51.0, 48.5), (19.0, 28.5), (11.0, 70.5)]):
        np.testing.assert_allclose(got[k], [(wx + 0.5) * 2.5 - 0.5, (wy + 0.5) * 1.25 - 0.5], atol=1e-6)
    refiner.refines = [0]  # only the refined ones are replaced; the window is the same
    refiner.blend = [1.0]
    got0 = refiner([scan], [start])[0]
    np.testing.assert_allclose(got0[0], got[0], atol=1e-9)
    np.testing.assert_array_equal(got0[1:], start[1:])
    start[2] = np.nan  # a box needs all three first estimates: nothing is refined without FH1
    np.testing.assert_array_equal(refiner([scan], [start])[0], start)


class _Split:
    """A refiner's session stand-in whose PS1 map has all its mass on one cell, PS2's split between two cells
    and FH1's between four, all far apart: peak masses 1, 1/2 and 1/4."""

    def run(self, _names, feeds):
        logits = np.full((feeds["image"].shape[0], 3, 24, 24), -60.0, np.float32)
        logits[:, 0, 12, 20] = 60.0
        logits[:, 1, [2, 20], [4, 4]] = 60.0
        logits[:, 2, [0, 0, 23, 23], [0, 23, 0, 23]] = 60.0
        return [logits]


def test_refiner_confidence_is_the_peak_mass_of_the_maps_its_window_reads(refine_run, tmp_path):
    """Peak masses 1, 1/2, 1/4 for the maps a window reads, in landmark order; NaN for the maps it does not read
    and for a scan with no first estimate; a flat map: 9 of the 24 x 24 cells (its peak is the first cell, a
    corner)."""
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    refiner.session = _Split()
    scan = np.zeros((160, 320), np.uint8)
    start = np.array([[159.5, 79.5], [79.5, 39.5], [12.0, 52.0]])
    nan = np.full((3, 2), np.nan)
    for centre, refines, n_points, read in [("midpoint", [0], 2, [0, 1]), ("landmark", [0], 2, [0]),
                                            ("landmark", [1], 2, [1]), ("box", [0], 3, [0, 1, 2])]:  # fmt: skip
        refiner.centre, refiner.refines, refiner.n_points = centre, refines, n_points
        refiner.blend = [1.0] * len(refines)
        _, conf = refiner.refine([scan, scan], [start, nan])
        expected = np.full(3, np.nan)
        expected[read] = np.array([1.0, 0.5, 0.25])[read]
        np.testing.assert_allclose(conf[0], expected, atol=1e-6)
        assert np.isnan(conf[1]).all()

    class _Flat:
        def run(self, _names, feeds):
            return [np.zeros((feeds["image"].shape[0], 2, 24, 24), np.float32)]

    refiner.session, refiner.centre, refiner.refines, refiner.n_points = _Flat(), "midpoint", [0], 2
    refiner.blend = [1.0]
    np.testing.assert_allclose(refiner.refine([scan], [start])[1][0][:2], 9 / 576, rtol=1e-5)


def test_predictor_refuses_what_the_refiner_is_unsure_of_and_reports_its_confidence(refine_run, tmp_path):
    from dataclasses import replace

    from partus.quality import DEFAULT_LIMITS

    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    bare = without_refiner(tmp_path / "m.onnx")
    images = [r.image for r in load_phantoms(3, seed=3, size=128)]
    open_limits = replace(DEFAULT_LIMITS, min_confidence=0.0, min_peak=0.0, min_dsnt_mass=0.0, max_aop_spread=1e9,
                          aop_range=(0.0, 180.0), ps_length_range=(0.0, 2.0))  # fmt: skip
    preds = Predictor(tmp_path / "m.onnx", limits=open_limits).predict(images)
    first = [p.measurement.landmarks.to_array() for p in Predictor(bare, limits=open_limits).predict(images)]
    _, own = Predictor(tmp_path / "m.onnx").models[0].refiner.refine(images, first)  # on the network's points
    for p, im, c in zip(preds, images, own, strict=True):
        m = p.measurement
        assert m.ok and "refiner_confidence" not in Predictor(bare).predict_one(im).measurement.extras
        conf = m.extras["refiner_confidence"]
        assert list(conf) == ["PS1", "PS2"]
        np.testing.assert_allclose([conf["PS1"], conf["PS2"]], c[:2], atol=1e-4)
        floor = max(conf.values()) + 1e-3  # above both: refused, naming the landmarks, the numbers kept
        strict = Predictor(tmp_path / "m.onnx", limits=replace(open_limits, min_refiner_mass=floor)).predict_one(im)
        assert not strict.measurement.ok
        assert "low symphysis refiner confidence (PS1" in strict.measurement.reason
        assert "PS2" in strict.measurement.reason
        np.testing.assert_allclose(strict.measurement.aop, m.aop)


@pytest.mark.parametrize(("centre", "refines"), [("landmark", [0, 1]), ("box", [0, 1, 2])])
def test_refiners_with_other_windows_train_and_export(centre, refines, tmp_path):
    base = ["train.epochs=1", "data.n_phantoms=8", "model.kwargs={features: 4}", *REFINE_SETTINGS]
    res = fit(load_config("configs/smoke.yaml", [*base, f"refine.centre={centre}", f"refine.refines={refines}"]),
              tmp_path, progress=False)  # fmt: skip
    export_onnx(res.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    assert refiner.centre == centre and refiner.refines == refines and refiner.blend == [1.0] * len(refines)
    assert read_metadata(refiner_path(tmp_path / "m.onnx"))["model_kwargs"]["out_channels"] == refiner.n_points
    rec = load_phantoms(2, seed=5, size=128)
    got = refiner([r.image for r in rec], [r.points for r in rec])
    for r, g in zip(rec, got, strict=True):
        assert np.isfinite(g).all() and not np.allclose(g[refines], r.points[refines])
        np.testing.assert_array_equal(g[len(refines) :], r.points[len(refines) :])  # FH1 unless refined


@pytest.mark.parametrize("centre", ["midpoint", "landmark", "box"])
def test_training_windows_sit_where_the_setting_says(centre, monkeypatch):
    """Without jitter, every training window is centred on the annotated midpoint, resp. on one endpoint, resp.
    on the centre of the three landmarks' bounding box."""
    import partus.train.refine as tr
    from partus.config import AugmentConfig, RefineConfig

    seen = []
    real = tr.crop_window
    monkeypatch.setattr(tr, "crop_window", lambda c, *a, **k: seen.append(np.asarray(c, float)) or real(c, *a, **k))
    rec = load_phantoms(4, seed=2, size=64)
    rc = RefineConfig(epochs=2, work=64, crop=32, features=4, jitter=0.0, refines=[0, 1], centre=centre, batch_size=4)
    tr.train_refiner(rec, rc, AugmentConfig(), seed=0)
    pts = [to_grid_coords(r.points, r.image.shape, (64, 64)) for r in rec]
    # where a window may sit, per scan (independent of the code: the box centre is the middle of the extremes)
    spots = {
        "midpoint": lambda e: [e[:2].mean(0)],
        "landmark": lambda e: [e[0], e[1]],
        "box": lambda e: [np.array([(e[:, 0].min() + e[:, 0].max()) / 2, (e[:, 1].min() + e[:, 1].max()) / 2])],
    }
    assert len(seen) == 8
    hits = [0, 0]
    for c in seen:  # which scan's spot is the window's centre?
        on = [j for e in pts for j, q in enumerate(spots[centre](e)) if np.abs(q - c).max() < 1e-9]
        assert len(on) == 1
        hits[on[0]] += 1
    assert centre != "landmark" or min(hits) > 0  # both endpoints get windows
