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
from partus.models.dsnt import dsnt, spatial_softmax
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
    got = aop_loss(torch.tensor(a), torch.tensor(b), eps=0.0)
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


def _module(aop_weight: float) -> LandmarkModule:
    cfg = load_config(None, [
        "data.source=phantoms", "data.input_size=64", "model.name=multitask_net", "model.kwargs={features: 8}",
        "model.encoder_weights=null", f"loss.aop_weight={aop_weight}",
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
    }
    module.train()
    out = module(batch["image"])
    loss = module._multitask_loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss)
    # The scaler's first update is the task's loss: 0.5 x the mean AoP error of the three usual-display scans.
    s = module.model.output_stride
    pred = dsnt(spatial_softmax(out["dsnt"].detach()))
    want = 0.5 * aop_loss(pred, (batch["points"] + 0.5) / s - 0.5)[[0, 1, 3]].mean()
    running = dict(zip(module.scaler.tasks, module.scaler.running.tolist(), strict=True))
    assert running["aop"] == pytest.approx(want.item(), rel=1e-5)
