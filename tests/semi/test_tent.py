"""Tent (:mod:`partus.train.tent`): entropy minimisation moves only the BatchNorm scales and shifts, and
makes the network surer on the site's scans."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from partus.errors import InputError
from partus.models import create_model
from partus.train.tent import entropy_adapt, site_entropy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scans(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.clip(rng.normal(90, 40, (70, 90)), 0, 255).astype(np.uint8) for _ in range(n)]


def test_site_entropy_against_hand_computed_values():
    """Uniform maps: ln(3) per pixel for three classes, 1 for each normalised DSNT map; a sure map: ~0."""
    out = {"seg": torch.zeros(2, 3, 4, 4), "dsnt": torch.zeros(2, 3, 4, 4)}
    assert float(site_entropy(out)) == pytest.approx(math.log(3) + 1.0, rel=1e-6)
    sure = {"seg": torch.zeros(2, 3, 4, 4), "dsnt": torch.zeros(2, 3, 4, 4)}
    sure["seg"][:, 0] = 50.0
    sure["dsnt"][..., 1, 2] = 50.0
    assert float(site_entropy(sure)) < 1e-6


def test_only_batchnorm_affine_parameters_move_and_entropy_falls():
    torch.manual_seed(0)
    net = create_model("multitask_net", features=8, imagenet_norm=False)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    scans = _scans(8)
    losses = entropy_adapt(net, scans, 64, epochs=6, lr=1e-2, batch=4)
    assert len(losses) == 12 and np.mean(losses[-2:]) < np.mean(losses[:2])
    bn = {name for name, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    moved = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    affine = {k for k in moved if k.rsplit(".", 1)[0] in bn and k.endswith((".weight", ".bias"))}
    assert affine and all(k.rsplit(".", 1)[0] in bn for k in moved)  # statistics move too, nothing else
    assert not net.training and all(p.requires_grad for p in net.parameters())


def test_no_usable_scan_is_refused():
    net = create_model("multitask_net", features=8, imagenet_norm=False)
    with pytest.raises(InputError, match="no usable scan"):
        entropy_adapt(net, [np.zeros((70, 90), np.uint8)], 64)
