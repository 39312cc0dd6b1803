"""The symphysis refiner: crop geometry, training inside ``partus train``, ONNX export, and its place in the
predictor (it replaces the refined landmarks only)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from partus.config import load_config
from partus.data.records import load_phantoms
from partus.decode import to_grid_coords, to_image_coords
from partus.errors import InputError
from partus.export import export_onnx, read_metadata
from partus.models.dsnt import dsnt, spatial_softmax
from partus.predict import Predictor, model_files
from partus.preprocess import resize_image
from partus.refine import Refiner, crop_window, cut, map_points, refiner_path
from partus.train.fit import fit
from partus.train.refine import load_refiner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = ["refine.epochs=2", "refine.work=128", "refine.crop=48", "refine.features=4"]


@pytest.mark.parametrize(("angle", "scale", "expected"), [(0.0, 1.0, (26.0, 6.0)), (90.0, 1.0, (6.0, 6.0)),
                                                          (0.0, 2.0, (21.0, 11.0))])  # fmt: skip
def test_window_cuts_where_it_maps(angle, scale, expected):
    img = np.zeros((200, 300), np.uint8)
    img[60, 170] = 255  # a dot at (x, y) = (170, 60), 10 px right of and above the window's centre
    if scale == 2.0:
        img[59:62, 169:172] = 255  # 3 x 3, so that the half-resolution window still samples it
    dot = (170.0, 60.0)
    m = crop_window((160.0, 70.0), 33, scale=scale, angle_deg=angle)
    mapped = map_points(m, [dot])[0]
    np.testing.assert_allclose(mapped, expected, atol=1e-9)  # by hand: centre pixel 16 sits on (160, 70)
    crop = cut(img, m, 33)
    y, x = np.unravel_index(int(np.argmax(crop)), crop.shape)
    assert (x, y) == tuple(int(round(v)) for v in expected)
    back = map_points(cv2.invertAffineTransform(m), [mapped])[0]
    np.testing.assert_allclose(back, dot, atol=1e-9)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("refine_run")
    cfg = load_config("configs/smoke.yaml", ["train.epochs=1", "data.n_phantoms=16", "model.kwargs={features: 4}",
                                             *SETTINGS])  # fmt: skip
    return fit(cfg, out, progress=False)


def test_partus_train_keeps_a_refiner_and_export_writes_it_beside_the_network(run, tmp_path):
    assert (run.out_dir / "refiner.pt").is_file()
    meta = export_onnx(run.checkpoint, tmp_path / "m.onnx")
    assert meta["refiner"]["max_abs_diff"] < 1e-4
    stored = read_metadata(refiner_path(tmp_path / "m.onnx"))
    assert stored["kind"] == "refiner" and stored["crop"] == 48 and stored["work"] == 128 and stored["refines"] == [0]
    assert model_files(tmp_path) == [str(tmp_path / "m.onnx")]  # a model folder does not list it as a member


def test_refiner_matches_torch_through_the_same_window(run, tmp_path):
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    net, rc, _ = load_refiner(run.out_dir / "refiner.pt")
    rec = load_phantoms(3, seed=7, size=160)
    start = [r.points + [[3.0, -2.0], [-1.0, 4.0], [0.0, 0.0]] for r in rec]
    got = refiner([r.image for r in rec], start)
    for r, s, g in zip(rec, start, got, strict=True):
        centre = to_grid_coords(s[:2], r.image.shape, (128, 128)).mean(0)  # independent of Refiner's code path
        m = crop_window(centre, 48)
        x = torch.from_numpy(cut(resize_image(r.image, 128), m, 48).astype(np.float32) / 255.0)[None, None]
        with torch.no_grad():
            xy = dsnt(spatial_softmax(net(x)))[0].numpy()
        crop_xy = to_image_coords(xy, (24, 24), (48, 48))
        expected = to_image_coords(map_points(cv2.invertAffineTransform(m), crop_xy), (128, 128), r.image.shape)
        np.testing.assert_allclose(g[0], expected[0], atol=2e-3)
        np.testing.assert_array_equal(g[1:], s[1:])  # PS2 and FH1 untouched: the config refines PS1 only


class _Spike:
    """An ONNX session stand-in whose PS1 map (and PS2 map, and FH1 map) has all its mass on one grid cell."""

    def __init__(self, cell, *more):
        self.cells = (cell, *more) if more else (cell, cell)

    def run(self, _names, feeds):
        n = feeds["image"].shape[0]
        logits = np.zeros((n, len(self.cells), 24, 24), np.float32)
        for k, (x, y) in enumerate(self.cells):
            logits[:, k, y, x] = 60.0
        return [logits]


def test_refined_point_comes_back_where_worked_out_by_hand(run, tmp_path):
    """A non-square scan (320 x 160) at work 128, window 48, grid 24: every step of the mapping by hand."""
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    refiner.session = _Spike((20, 12))
    scan = np.zeros((160, 320), np.uint8)
    start = np.array([[159.5, 79.5], [79.5, 39.5], [10.0, 20.0]])  # working pixels (63.5, 63.5), (31.5, 31.5)
    got = refiner([scan], [start])[0]
    # window centre (47.5, 47.5); cell (20, 12) -> crop (40.5, 24.5) -> work (64.5, 48.5) -> scan:
    np.testing.assert_allclose(got[0], [(64.5 + 0.5) * 2.5 - 0.5, (48.5 + 0.5) * 1.25 - 0.5], atol=1e-6)
    np.testing.assert_array_equal(got[1:], start[1:])
    nan = np.full((3, 2), np.nan)
    assert np.isnan(refiner([scan], [nan])[0]).all()  # no first estimate: nothing to refine


def test_landmark_centred_windows_refine_each_point_in_its_own(run, tmp_path):
    """``centre: landmark``: one window per refined point, centred on its own first estimate, each point read
    from its own map (same scan as above; PS1's spike sits 17 px right of and 1 px below a window's centre,
    PS2's 15 px left of and 19 px above it, in working pixels)."""
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    assert refiner.centre == "midpoint"  # the default, and that of refiners exported before the setting
    refiner.session, refiner.centre, refiner.refines = _Spike((20, 12), (4, 2)), "landmark", [0, 1]
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


def test_blend_averages_a_refined_point_with_the_first_estimate(run, tmp_path):
    """``refines: [0, 1]``, ``blend: [1, 0.5]``: PS1 replaced, PS2 half-way between its first estimate and the
    refined point (same scan and window as above; PS2's cell (4, 2) -> crop (8.5, 4.5) -> work (32.5, 28.5)
    -> scan (82, 35.75), averaged with (79.5, 39.5))."""
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    assert refiner.blend == [1.0]  # exported without a blend: the refined points replace the first ones
    refiner.session, refiner.refines, refiner.blend = _Spike((20, 12), (4, 2)), [0, 1], [1.0, 0.5]
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


def test_a_box_window_holds_all_three_points_and_refines_them(run, tmp_path):
    """``centre: box``: one window on the centre of the three first estimates' bounding box; each refined
    point read from its own map (working pixels: PS1 (63.5, 63.5), PS2 (31.5, 31.5), FH1 (4.5, 41.5), so the
    box spans x 4.5..63.5 and y 31.5..63.5 and its centre is (34, 47.5))."""
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    refiner.session, refiner.centre, refiner.n_points = _Spike((20, 12), (4, 2), (0, 23)), "box", 3
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


def test_refiner_confidence_is_the_peak_mass_of_the_maps_its_window_reads(run, tmp_path):
    """All the mass on one cell: confidence 1 (within float precision) for each map a window reads, NaN for
    the others and for a scan with no first estimate; a flat map: 9 of the 24 x 24 cells (its peak is the
    first cell, a corner)."""
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    refiner.session = _Spike((20, 12), (4, 2), (0, 23))
    scan = np.zeros((160, 320), np.uint8)
    start = np.array([[159.5, 79.5], [79.5, 39.5], [12.0, 52.0]])
    nan = np.full((3, 2), np.nan)
    for centre, refines, n_points, read in [("midpoint", [0], 2, [0, 1]), ("landmark", [0], 2, [0]),
                                            ("landmark", [0, 1], 2, [0, 1]), ("box", [0], 3, [0, 1, 2])]:  # fmt: skip
        refiner.centre, refiner.refines, refiner.n_points = centre, refines, n_points
        refiner.blend = [1.0] * len(refines)
        points, conf = refiner.refine([scan, scan], [start, nan])
        np.testing.assert_array_equal(points[0], refiner([scan], [start])[0])  # the same points as a plain call
        expected = np.full(3, np.nan)
        expected[read] = 1.0
        np.testing.assert_allclose(conf[0], expected, atol=1e-6)
        assert np.isnan(conf[1]).all()

    class _Flat:
        def run(self, _names, feeds):
            return [np.zeros((feeds["image"].shape[0], 2, 24, 24), np.float32)]

    refiner.session, refiner.centre, refiner.refines, refiner.n_points = _Flat(), "midpoint", [0], 2
    refiner.blend = [1.0]
    np.testing.assert_allclose(refiner.refine([scan], [start])[1][0][:2], 9 / 576, rtol=1e-5)


def test_predictor_refuses_what_the_refiner_is_unsure_of_and_reports_its_confidence(run, tmp_path):
    from dataclasses import replace

    from partus.quality import DEFAULT_LIMITS

    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tmp_path / "m.onnx", bare / "m.onnx")
    images = [r.image for r in load_phantoms(3, seed=3, size=128)]
    open_limits = replace(DEFAULT_LIMITS, min_confidence=0.0, min_peak=0.0, min_dsnt_mass=0.0, max_aop_spread=1e9,
                          aop_range=(0.0, 180.0), ps_length_range=(0.0, 2.0))  # fmt: skip
    preds = Predictor(tmp_path / "m.onnx", limits=open_limits).predict(images)
    first = [p.measurement.landmarks.to_array() for p in Predictor(bare / "m.onnx", limits=open_limits).predict(images)]
    _, own = Predictor(tmp_path / "m.onnx").models[0].refiner.refine(images, first)  # on the network's points
    for p, im, c in zip(preds, images, own, strict=True):
        m = p.measurement
        assert m.ok and "refiner_confidence" not in Predictor(bare / "m.onnx").predict_one(im).measurement.extras
        conf = m.extras["refiner_confidence"]
        assert list(conf) == ["PS1", "PS2"]
        np.testing.assert_allclose([conf["PS1"], conf["PS2"]], c[:2], atol=1e-4)
        floor = max(conf.values()) + 1e-3  # above both: refused, naming the landmarks, the numbers kept
        strict = Predictor(tmp_path / "m.onnx", limits=replace(open_limits, min_refiner_mass=floor)).predict_one(im)
        assert not strict.measurement.ok
        assert "low symphysis refiner confidence (PS1" in strict.measurement.reason
        assert "PS2" in strict.measurement.reason
        np.testing.assert_allclose(strict.measurement.aop, m.aop)
        if abs(conf["PS1"] - conf["PS2"]) > 1e-3:  # a floor between the two: only the less sure one is named
            between = replace(open_limits, min_refiner_mass=(conf["PS1"] + conf["PS2"]) / 2)
            reason = Predictor(tmp_path / "m.onnx", limits=between).predict_one(im).measurement.reason
            named = min(conf, key=conf.get)
            assert (
                f"low symphysis refiner confidence ({named} " in reason
                and ({"PS1", "PS2"} - {named}).pop() not in reason
            )


def test_a_box_refiner_trains_and_exports_and_fh1_needs_it(tmp_path):
    base = ["train.epochs=1", "data.n_phantoms=8", "model.kwargs={features: 4}", *SETTINGS]
    res = fit(load_config("configs/smoke.yaml", [*base, "refine.centre=box", "refine.refines=[0, 1, 2]"]),
              tmp_path, progress=False)  # fmt: skip
    export_onnx(res.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    assert refiner.centre == "box" and refiner.refines == [0, 1, 2] and refiner.n_points == 3
    assert read_metadata(refiner_path(tmp_path / "m.onnx"))["model_kwargs"]["out_channels"] == 3
    rec = load_phantoms(2, seed=5, size=128)
    got = refiner([r.image for r in rec], [r.points for r in rec])
    for r, g in zip(rec, got, strict=True):
        assert np.isfinite(g).all() and not np.isclose(g, r.points).any()
    with pytest.raises(InputError, match="centre: box"):
        load_config("configs/smoke.yaml", ["refine.refines=[0, 2]"])


def test_a_landmark_centred_refiner_trains_and_exports(tmp_path):
    base = ["train.epochs=1", "data.n_phantoms=8", "model.kwargs={features: 4}", *SETTINGS]
    res = fit(load_config("configs/smoke.yaml", [*base, "refine.centre=landmark", "refine.refines=[0, 1]"]),
              tmp_path, progress=False)  # fmt: skip
    export_onnx(res.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    assert refiner.centre == "landmark" and refiner.refines == [0, 1]
    rec = load_phantoms(2, seed=5, size=128)
    got = refiner([r.image for r in rec], [r.points for r in rec])
    for r, g in zip(rec, got, strict=True):
        assert np.isfinite(g).all() and not np.allclose(g[:2], r.points[:2])
        np.testing.assert_array_equal(g[2], r.points[2])
    with pytest.raises(InputError, match="centre"):
        load_config("configs/smoke.yaml", ["refine.centre=head"])


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


def test_older_refiners_still_count_as_done(run, tmp_path):
    """A refiner.pt saved before a setting existed takes its default; one with a removed setting is retrained."""
    from partus.config import RefineConfig
    from partus.train.refine import refiner_done

    blob = torch.load(run.out_dir / "refiner.pt", map_location="cpu", weights_only=True)
    rc = RefineConfig(**blob["refine"])
    old = {k: v for k, v in blob["refine"].items() if k != "centre"}
    torch.save({**blob, "refine": old}, tmp_path / "old.pt")
    assert refiner_done(tmp_path / "old.pt", rc, blob["key"])
    assert not refiner_done(tmp_path / "old.pt", rc.model_copy(update={"centre": "landmark"}), blob["key"])
    torch.save({**blob, "refine": {**old, "gone": 1}}, tmp_path / "stale.pt")
    assert not refiner_done(tmp_path / "stale.pt", rc, blob["key"])


def test_predictor_uses_the_refiner_for_ps1_only(run, tmp_path):
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tmp_path / "m.onnx", bare / "m.onnx")
    images = [r.image for r in load_phantoms(4, seed=3, size=128)]
    with_refiner = Predictor(tmp_path / "m.onnx")
    assert with_refiner.models[0].refiner is not None and Predictor(bare / "m.onnx").models[0].refiner is None
    a = [p.measurement.landmarks.to_array() for p in with_refiner.predict(images)]
    b = [p.measurement.landmarks.to_array() for p in Predictor(bare / "m.onnx").predict(images)]
    once = with_refiner.models[0].refiner(images, b)  # the refiner once, on the network's own points
    for x, y, z in zip(a, b, once, strict=True):
        np.testing.assert_array_equal(x[1:], y[1:])
        np.testing.assert_allclose(x[0], z[0], atol=1e-9)
        assert not np.allclose(x[0], y[0])
    shown = [np.ascontiguousarray(im[:, ::-1]) for im in images]  # a mirrored display: refined in the usual one
    m = [p.measurement.landmarks.to_array() for p in with_refiner.predict(shown, orientation="mirrored")]
    for x, y in zip(m, a, strict=True):
        np.testing.assert_allclose(x[:, 0], 127.0 - y[:, 0], atol=1e-6)
        np.testing.assert_allclose(x[:, 1], y[:, 1], atol=1e-6)


def test_a_refiner_is_not_a_network(run, tmp_path):
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    with pytest.raises(InputError, match="a symphysis refiner, not a network"):
        Predictor(refiner_path(tmp_path / "m.onnx"))


def test_export_never_leaves_another_runs_refiner(run, tmp_path):
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    assert refiner_path(tmp_path / "m.onnx").is_file()
    bare_run = tmp_path / "other" / "checkpoints"
    bare_run.mkdir(parents=True)
    shutil.copy(run.checkpoint, bare_run / "last.ckpt")  # the same network, from a run without a refiner
    meta = export_onnx(bare_run / "last.ckpt", tmp_path / "m.onnx")
    assert "refiner" not in meta and not refiner_path(tmp_path / "m.onnx").exists()


def test_segmentation_models_take_no_refiner(tmp_path):
    cfg = load_config("configs/smoke.yaml", ["model.name=seg_unet", "refine.epochs=1"])
    with pytest.raises(InputError, match="refiner replaces fused landmarks"):
        fit(cfg, tmp_path, progress=False)


def test_a_network_is_not_a_refiner(run, tmp_path):
    export_onnx(run.checkpoint, tmp_path / "m.onnx")
    with pytest.raises(InputError, match="not a refiner"):
        Refiner(tmp_path / "m.onnx")


def test_refine_settings_are_checked():
    with pytest.raises(InputError, match="crop"):
        load_config("configs/smoke.yaml", ["refine.crop=50"])
    with pytest.raises(InputError, match="refines"):
        load_config("configs/smoke.yaml", ["refine.refines=[2]"])


def test_torch_path_refines_in_the_usual_display():
    """``partus cv`` refines as the shipped path does: on the scan in its usual display, points mapped back."""
    from partus.models import create_model
    from partus.train.inference import predict_oriented

    torch.manual_seed(0)
    model = create_model("heatmap_unet", features=4).eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 80), dtype=np.uint8) for _ in range(2)]
    seen = []

    def refiner(grays, points):
        seen.append([g.copy() for g in grays])
        return [np.asarray(p) + [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]] for p in points]

    kw = {"input_size": 64}
    base, _ = predict_oriented(model, images, orientation="standard", **kw)
    moved, _ = predict_oriented(model, images, orientation="standard", refiner=refiner, **kw)
    np.testing.assert_allclose(moved[:, 0], base[:, 0] + [1.0, 0.0])
    np.testing.assert_array_equal(moved[:, 1:], base[:, 1:])
    shown = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    base_m, _ = predict_oriented(model, shown, orientation="mirrored", **kw)
    moved_m, _ = predict_oriented(model, shown, orientation="mirrored", refiner=refiner, **kw)
    np.testing.assert_allclose(moved_m[:, 0], base_m[:, 0] + [-1.0, 0.0])  # +x in the usual display
    np.testing.assert_array_equal(seen[-1][0], images[0])  # the refiner saw the scan mirrored back


def test_a_rerun_without_a_refiner_removes_the_old_one(tmp_path):
    base = ["train.epochs=1", "data.n_phantoms=8", "model.kwargs={features: 4}", *SETTINGS[1:]]
    fit(load_config("configs/smoke.yaml", [*base, "refine.epochs=1"]), tmp_path, progress=False)
    assert (tmp_path / "refiner.pt").is_file()
    res = fit(load_config("configs/smoke.yaml", [*base, "refine.epochs=0"]), tmp_path, progress=False)
    assert not (tmp_path / "refiner.pt").exists()
    export_onnx(res.checkpoint, tmp_path / "m.onnx")
    assert not refiner_path(tmp_path / "m.onnx").exists()


def test_cv_exports_each_folds_refiner_once_for_the_shift_report_and_the_points(tmp_path, monkeypatch):
    import partus.train.cv as cv

    exported = []
    real = cv.export_refiner
    monkeypatch.setattr(cv, "export_refiner", lambda src, out: exported.append(src) or real(src, out))
    cfg = load_config("configs/smoke.yaml", ["train.epochs=1", "data.n_phantoms=12", "model.kwargs={features: 4}",
                                             *SETTINGS[1:], "refine.epochs=1"])  # fmt: skip
    summary = cv.cross_validate(cfg, tmp_path, folds=2, progress=False)
    assert "shift_aware" in summary
    assert exported == [tmp_path / "fold0" / "refiner.pt", tmp_path / "fold1" / "refiner.pt"]
