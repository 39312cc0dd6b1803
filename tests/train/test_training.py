"""Training really learns (every family, on synthetic phantoms, CPU) and resumes exactly."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from partus.config import load_config
from partus.decode import fuse_landmarks
from partus.evaluate import point_errors
from partus.models import create_model
from partus.train.fit import fit, load_records, split
from partus.train.inference import predict

SMALL_TRANSFORMER = {"features": 8, "embed_dim": 32, "depth": 1, "num_heads": 2, "img_size": 64}
FAMILIES = {
    "heatmap_unet": ({"features": 8}, {}),
    "transunet": ({**SMALL_TRANSFORMER, "output_stride": 2}, {"train.lr": 3e-3}),
    "dsnt_unet": ({"features": 8}, {"data.sigma": 1.0, "train.lr": 3e-3}),
    "seg_unet": ({"features": 8}, {}),
}


def _cfg(tmp_path, name: str, kwargs: dict, extra: dict, epochs: int = 24):
    over = [f"model.name={name}", f"model.kwargs={kwargs}", f"train.epochs={epochs}", "train.batch_size=8"]
    over += [f"{k}={v}" for k, v in extra.items()]
    return load_config("configs/smoke.yaml", over)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_learns_far_better_than_untrained(tmp_path, name):
    kwargs, extra = FAMILIES[name]
    cfg = _cfg(tmp_path, name, kwargs, extra)
    records = load_records(cfg)
    train, val = split(records, 0, cfg.train.folds, cfg.train.seed)
    gt = np.stack([r.points for r in val])
    images = [r.image for r in val]

    def mre(model) -> float:
        pts, _, _ = predict(model, images, input_size=cfg.data.input_size, sigma=cfg.data.sigma)
        err = point_errors(pts, gt)
        return float(np.where(np.isfinite(err), err, 100.0).mean())  # an unmeasurable mask counts as a miss

    L.seed_everything(0, verbose=False)
    untrained = mre(create_model(name, **kwargs))
    res = fit(cfg, tmp_path / name, fold=0, records=records, progress=False)
    trained = mre(res.module.model)
    steps = res.epochs * (len(train) // cfg.train.batch_size)
    assert steps >= 200, steps
    assert trained < 0.4 * untrained, (untrained, trained)
    assert trained < 8.0, trained  # px on 128-px phantoms


class _Interrupt(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated interruption")


def test_interrupted_training_resumes_exactly(tmp_path):
    over = ["train.epochs=2", "data.n_phantoms=24", "model.kwargs={features: 4}", "train.batch_size=8"]
    cfg = load_config("configs/smoke.yaml", over)
    straight = fit(cfg, tmp_path / "straight", progress=False)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        fit(cfg, tmp_path / "resumed", progress=False, callbacks=[_Interrupt()])
    assert (tmp_path / "resumed" / "checkpoints" / "last.ckpt").is_file()
    resumed = fit(cfg, tmp_path / "resumed", progress=False)
    a, b = straight.module.state_dict(), resumed.module.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_ensemble_averages_coordinates_and_ignores_missing():
    a = np.array([[[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]]])
    b = np.array([[[2.0, 2.0], [np.nan, np.nan], [6.0, 6.0]]])
    np.testing.assert_allclose(fuse_landmarks([a, b]), [[[1, 1], [2, 2], [5, 5]]])


def test_multitask_heads_are_fused_on_the_torch_path_as_on_the_onnx_path():
    """Training-time inference fuses a multitask network's heads as the shipped ONNX path does: the
    coordinate-wise median of the segmentation rule's, the heatmap's and the DSNT's landmarks (FUSION)."""
    from _helpers import SAMPLE_IMAGES

    from partus.data.records import load_psfhs
    from partus.geometry import landmarks_from_mask
    from partus.train.inference import outputs_to_landmarks

    mask = load_psfhs(SAMPLE_IMAGES.parent)[0].mask
    seg = torch.from_numpy(np.stack([mask == c for c in (0, 1, 2)]).astype(np.float32))[None]
    hm_pts = np.array([[150.0, 40.0], [70.0, 60.0], [200.0, 90.0]])
    ds_pts = np.array([[140.0, 36.0], [60.0, 58.0], [210.0, 80.0]])
    yy, xx = np.mgrid[0:256, 0:256]
    heat = np.stack([np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2)) for x, y in hm_pts])
    probs = np.zeros((3, 256, 256))
    for k, (x, y) in enumerate(ds_pts.astype(int)):
        probs[k, y, x] = 1.0  # all the mass on one pixel: the expectation is that pixel
    out = {"seg": seg, "heatmap": torch.from_numpy(heat.astype(np.float32))[None],
           "dsnt": torch.from_numpy(probs.astype(np.float32))[None]}  # fmt: skip
    pts, _, _ = outputs_to_landmarks(out, "multitask", [(256, 256)])
    expect = np.median(np.stack([landmarks_from_mask(mask).to_array(), hm_pts, ds_pts]), axis=0)
    np.testing.assert_allclose(pts[0], expect, atol=0.05)


def test_upsampled_labels_follow_the_probabilities():
    from partus.train.inference import upsample_labels

    yy, xx = np.mgrid[0:32, 0:32]
    disc = ((xx - 15.5) ** 2 + (yy - 15.5) ** 2 < 10**2).astype(np.float32)
    probs = np.stack([1 - disc, np.zeros_like(disc), disc])
    big = upsample_labels(probs, (128, 128))
    assert big.shape == (128, 128) and set(np.unique(big)) == {0, 2}
    area = (big == 2).sum() / 16  # in 32-px units
    assert abs(area - disc.sum()) / disc.sum() < 0.05
    np.testing.assert_array_equal(upsample_labels(probs, (32, 32)), probs.argmax(0))
