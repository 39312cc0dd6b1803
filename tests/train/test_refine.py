"""The symphysis refiner: crop geometry, training inside ``partus train``, ONNX export, and its place in the
predictor (it replaces the refined landmarks only)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch
from _helpers import REFINE_SETTINGS, without_refiner

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


def test_partus_train_keeps_a_refiner_and_export_writes_it_beside_the_network(refine_run, tmp_path):
    assert (refine_run.out_dir / "refiner.pt").is_file()
    meta = export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    assert meta["refiner"]["max_abs_diff"] < 1e-4
    stored = read_metadata(refiner_path(tmp_path / "m.onnx"))
    assert stored["kind"] == "refiner" and stored["crop"] == 48 and stored["work"] == 128 and stored["refines"] == [0]
    assert model_files(tmp_path) == [str(tmp_path / "m.onnx")]  # a model folder does not list it as a member


def test_refiner_matches_torch_through_the_same_window(refine_run, tmp_path):
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    refiner = Refiner(refiner_path(tmp_path / "m.onnx"))
    net, rc, _ = load_refiner(refine_run.out_dir / "refiner.pt")
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


def test_older_refiners_still_count_as_done(refine_run, tmp_path):
    """A refiner.pt saved before a setting existed takes its default; one with a removed setting is retrained."""
    from partus.config import RefineConfig
    from partus.train.refine import refiner_done

    blob = torch.load(refine_run.out_dir / "refiner.pt", map_location="cpu", weights_only=True)
    rc = RefineConfig(**blob["refine"])
    old = {k: v for k, v in blob["refine"].items() if k != "centre"}
    torch.save({**blob, "refine": old}, tmp_path / "old.pt")
    assert refiner_done(tmp_path / "old.pt", rc, blob["key"])
    assert not refiner_done(tmp_path / "old.pt", rc.model_copy(update={"centre": "landmark"}), blob["key"])
    torch.save({**blob, "refine": {**old, "gone": 1}}, tmp_path / "stale.pt")
    assert not refiner_done(tmp_path / "stale.pt", rc, blob["key"])
    # how its points are used (blend; refines, for a window that supervises every map) is not how it was trained:
    # kept, and its stored settings rewritten to the new ones (weights untouched)
    use = rc.model_copy(update={"refines": [0, 1], "blend": [1.0, 0.5]})
    assert refiner_done(tmp_path / "old.pt", use, blob["key"])
    again = torch.load(tmp_path / "old.pt", map_location="cpu", weights_only=True)
    assert RefineConfig(**again["refine"]) == use
    assert all(torch.equal(again["state_dict"][k], v) for k, v in blob["state_dict"].items())
    assert not refiner_done(tmp_path / "old.pt", use.model_copy(update={"epochs": 3}), blob["key"])
    assert not refiner_done(tmp_path / "old.pt", use, "another key")
    # a landmark-centred refiner is trained on its refined points' windows: another choice means retraining
    lm = rc.model_copy(update={"centre": "landmark", "refines": [0, 1]})
    torch.save({**blob, "refine": lm.model_dump()}, tmp_path / "lm.pt")
    assert not refiner_done(tmp_path / "lm.pt", lm.model_copy(update={"refines": [0]}), blob["key"])
    assert refiner_done(tmp_path / "lm.pt", lm.model_copy(update={"blend": [1.0, 0.5]}), blob["key"])


def test_predictor_uses_the_refiner_for_ps1_only(refine_run, tmp_path):
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    bare = without_refiner(tmp_path / "m.onnx")
    images = [r.image for r in load_phantoms(4, seed=3, size=128)]
    with_refiner = Predictor(tmp_path / "m.onnx")
    assert with_refiner.models[0].refiner is not None and Predictor(bare).models[0].refiner is None
    a = [p.measurement.landmarks.to_array() for p in with_refiner.predict(images)]
    b = [p.measurement.landmarks.to_array() for p in Predictor(bare).predict(images)]
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


def test_a_refiner_is_not_a_network(refine_run, tmp_path):
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    with pytest.raises(InputError, match="a symphysis refiner, not a network"):
        Predictor(refiner_path(tmp_path / "m.onnx"))


def test_export_never_leaves_another_runs_refiner(refine_run, tmp_path):
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    assert refiner_path(tmp_path / "m.onnx").is_file()
    bare_run = tmp_path / "other" / "checkpoints"
    bare_run.mkdir(parents=True)
    shutil.copy(refine_run.checkpoint, bare_run / "last.ckpt")  # the same network, from a run without a refiner
    meta = export_onnx(bare_run / "last.ckpt", tmp_path / "m.onnx")
    assert "refiner" not in meta and not refiner_path(tmp_path / "m.onnx").exists()


def test_segmentation_models_take_no_refiner(tmp_path):
    cfg = load_config("configs/smoke.yaml", ["model.name=seg_unet", "refine.epochs=1"])
    with pytest.raises(InputError, match="refiner replaces fused landmarks"):
        fit(cfg, tmp_path, progress=False)


def test_a_network_is_not_a_refiner(refine_run, tmp_path):
    export_onnx(refine_run.checkpoint, tmp_path / "m.onnx")
    with pytest.raises(InputError, match="not a refiner"):
        Refiner(tmp_path / "m.onnx")


def test_refine_settings_are_checked():
    with pytest.raises(InputError, match="crop"):
        load_config("configs/smoke.yaml", ["refine.crop=50"])
    with pytest.raises(InputError, match="refines"):
        load_config("configs/smoke.yaml", ["refine.refines=[2]"])
    with pytest.raises(InputError, match="centre: box"):  # FH1 only in a window that holds the head
        load_config("configs/smoke.yaml", ["refine.refines=[0, 2]"])
    with pytest.raises(InputError, match="centre"):
        load_config("configs/smoke.yaml", ["refine.centre=head"])


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
    base = ["train.epochs=1", "data.n_phantoms=8", "model.kwargs={features: 4}", *REFINE_SETTINGS[1:]]
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
                                             *REFINE_SETTINGS[1:], "refine.epochs=1"])  # fmt: skip
    summary = cv.cross_validate(cfg, tmp_path, folds=2, progress=False)
    assert "shift_aware" in summary
    assert exported == [tmp_path / "fold0" / "refiner.pt", tmp_path / "fold1" / "refiner.pt"]
