"""``loss.aop_weight``: the AoP error of the DSNT head's coordinates as an extra multi-task loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from partus.config import load_config
from partus.geometry import angle_of_progression
from partus.losses import aop_loss
from partus.train.module import LandmarkModule

coord = st.floats(-200, 200, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(coord, min_size=12, max_size=12))
def test_aop_loss_is_the_absolute_aop_difference_of_the_geometry_module(xs):
    a, b = np.array(xs[:6]).reshape(1, 3, 2), np.array(xs[6:]).reshape(1, 3, 2)
    for p in (a, b):  # the angle is undefined when PS2 or FH1 sits on PS1
        if min(np.linalg.norm(p[0, 1] - p[0, 0]), np.linalg.norm(p[0, 2] - p[0, 0])) < 1.0:
            return
    want = abs(angle_of_progression(*a[0]) - angle_of_progression(*b[0]))
    got = aop_loss(torch.tensor(a), torch.tensor(b), eps=0.0, min_len=0.0, min_frac=0.0)  # no gate
    assert got.shape == (1,) and got.item() == pytest.approx(want, abs=1e-6)


def test_aop_loss_ignores_the_grid_scale_and_offset_and_has_finite_gradients():
    gt = torch.tensor([[[10.0, 20.0], [40.0, 25.0], [5.0, 60.0]]])
    pred = gt + torch.tensor([[[1.0, -2.0], [0.5, 3.0], [-4.0, 1.0]]])
    on_grid = aop_loss((pred + 0.5) / 4 - 0.5, (gt + 0.5) / 4 - 0.5)  # as the DSNT targets are mapped
    assert on_grid.item() == pytest.approx(aop_loss(pred, gt).item(), abs=1e-4)
    assert aop_loss(gt, gt).item() == pytest.approx(0.0, abs=1e-3)
    straight = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [-10.0, 0.0]]], requires_grad=True)  # AoP = 180
    aop_loss(straight, gt).sum().backward()
    assert torch.isfinite(straight.grad).all()


def test_a_collapsed_prediction_adds_nothing_until_its_points_separate():
    gt = torch.tensor([[[10.0, 20.0], [40.0, 25.0], [5.0, 60.0]]]).repeat(2, 1, 1)
    pred = gt.clone()
    pred[0] = torch.tensor([[16.0, 16.0], [16.3, 16.2], [15.8, 16.4]])  # an untrained head: all near the centre
    pred[1, 2] += torch.tensor([6.0, -3.0])
    pred.requires_grad_(True)
    loss = aop_loss(pred, gt)
    assert loss[0].item() == 0.0 and loss[1].item() > 1.0
    loss.sum().backward()
    assert torch.equal(pred.grad[0], torch.zeros(3, 2)) and pred.grad[1].abs().sum() > 0
    # Points apart but the axis under half the annotated one (30 px): still left to the other losses.
    half = gt[:1].clone()
    half[0, 1] = half[0, 0] + (gt[0, 1] - gt[0, 0]) * 0.4 + torch.tensor([0.0, 3.0])  # shorter and turned
    assert aop_loss(half, gt[:1]).item() == 0.0 and aop_loss(half, gt[:1], min_frac=0.3).item() > 0.0


def _module(aop_weight: float, dynamic: bool = True) -> LandmarkModule:
    cfg = load_config(None, [
        "data.source=phantoms", "data.input_size=64", "model.name=multitask_net", "model.kwargs={features: 8}",
        "model.encoder_weights=null", f"loss.aop_weight={aop_weight}", f"loss.aop_dynamic={str(dynamic).lower()}",
    ])  # fmt: skip
    return LandmarkModule(cfg.model_dump(mode="json"))


def test_aop_task_joins_the_dynamic_scaler_only_when_weighted():
    assert _module(0.0).scaler.tasks == ("seg", "heatmap", "dsnt", "cls")  # old checkpoints still load
    module = _module(0.5)
    assert module.scaler.tasks == ("seg", "heatmap", "dsnt", "cls", "aop")
    torch.manual_seed(0)
    n, size = 4, 64
    batch = {
        "image": torch.rand(n, 1, size, size),
        "mask": torch.randint(0, 3, (n, size, size)),
        "heatmaps": torch.rand(n, 3, size // module.model.output_stride, size // module.model.output_stride),
        "points": torch.tensor([[[10.0, 20.0], [40.0, 25.0], [30.0, 50.0]]]).repeat(n, 1, 1),
        "mirrored": torch.tensor([0.0, 0.0, 1.0, 0.0]),
        "orig_size": torch.tensor([[300, 600]] * n),  # (H, W) of a wide scan, squeezed into the square input
    }
    module.train()
    out = module(batch["image"])
    assert torch.isfinite(module._multitask_loss(out, batch))
    assert module.scaler.running[4] == 0  # untrained: the DSNT points sit together, the AoP task waits
    # DSNT logits peaked at chosen grid points: the AoP task now measures them, x stretched back to the
    # scan's 2:1 aspect ratio (the angles of the scan, not of the squeezed input).
    s = module.model.output_stride
    chosen = np.array([[10, 20], [40, 28], [26, 50]])  # near the annotated points, not on them
    logits = torch.zeros_like(out["dsnt"])
    for k, (x, y) in enumerate(chosen):
        logits[:, k, y, x] = 60.0
    out = {**out, "dsnt": logits.requires_grad_(True)}
    loss = module._multitask_loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
    target = ((batch["points"][0] + 0.5) / s - 0.5).numpy()
    want = 0.5 * abs(angle_of_progression(*(chosen * [2.0, 1.0])) - angle_of_progression(*(target * [2.0, 1.0])))
    assert want > 1.0
    # A task seen for the first time starts at its loss (the three usual-display scans are alike).
    assert module.scaler.running[4].item() == pytest.approx(want, rel=1e-3)


def test_a_fixed_aop_term_is_added_outside_the_scaler_at_exactly_its_weight():
    fixed, without = _module(0.2, dynamic=False), _module(0.0)
    assert fixed.scaler.tasks == without.scaler.tasks == ("seg", "heatmap", "dsnt", "cls")
    torch.manual_seed(1)
    n, size = 3, 64
    s = fixed.model.output_stride
    batch = {
        "image": torch.rand(n, 1, size, size),
        "mask": torch.randint(0, 3, (n, size, size)),
        "heatmaps": torch.rand(n, 3, size // s, size // s),
        "points": torch.tensor([[[10.0, 20.0], [40.0, 25.0], [30.0, 50.0]]]).repeat(n, 1, 1),
        "mirrored": torch.zeros(n),
        "orig_size": torch.tensor([[64, 64]] * n),
    }
    fixed.train(), without.train()
    out = fixed(batch["image"])
    target = ((batch["points"][0] + 0.5) / s - 0.5).numpy()
    chosen = np.round(target).astype(int) + [[0, 2], [0, -4], [5, 0]]  # grid points near the annotation
    logits = torch.zeros_like(out["dsnt"])
    for k, (x, y) in enumerate(chosen):
        logits[:, k, y, x] = 60.0
    out = {**out, "dsnt": logits}
    err = abs(angle_of_progression(*chosen.astype(float)) - angle_of_progression(*target))
    assert err > 1.0
    got = fixed._multitask_loss(out, batch) - without._multitask_loss(out, batch)
    assert got.item() == pytest.approx(0.2 * err, rel=1e-3)
