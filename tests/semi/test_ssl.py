"""Self-supervised pretraining: the losses fall, clip-mates are never negatives, the output initialises
``partus train``, and a killed run resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from partus.data.records import load_phantoms
from partus.models import MobileNetUNet, load_imagenet_encoder
from partus.train.ssl import PretrainConfig, _build, pretrain

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images():
    return [r.image for r in load_phantoms(32, seed=3, size=64)]


def _cfg(**kw):
    base = {"input_size": 64, "batch_size": 8, "minutes": None, "init": None, "threads": 1, "queue": 64}
    return PretrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_mim_loss_falls_and_initialises_training(images, tmp_path):
    res = pretrain(images, tmp_path / "mim.pth", config=_cfg(method="mim", epochs=6, lr=0.05))
    assert res.epochs == 6 and res.steps == 6 * (len(images) // 8)
    assert np.mean(res.losses[-2:]) < 0.8 * res.losses[0]
    sd = torch.load(tmp_path / "mim.pth", weights_only=True)
    assert all(k.startswith("features.") for k in sd)
    model = MobileNetUNet(features=8)
    load_imagenet_encoder(model, sd)  # the ImageNet loader takes it: partus train's model.encoder_weights
    assert torch.equal(model.encoder.features[0][0].weight, sd["features.0.0.weight"])
    meta = json.loads((tmp_path / "mim.pth.json").read_text())
    assert meta["method"] == "mim" and meta["steps"] == res.steps and not (tmp_path / "mim.pth.state").exists()


class _TinyEncoder(torch.nn.Module):
    """A two-stage CNN with the encoder interface MoCo uses (``channels``, maps shallow to deep)."""

    channels = (8, 16)

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, 2, 1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.b = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU())

    def forward(self, x):
        a = self.a(x)
        return [a, self.b(a)]


def test_moco_loss_falls(images):
    """MoCo's loss (InfoNCE against the queue of momentum-encoded keys) on a small encoder, views jittered
    by small rotations (a two-layer network cannot learn the full ultrasound views in a few dozen steps):
    from the second epoch on, when the queue holds real keys instead of its random start, it must fall."""
    from partus.config import AugmentConfig
    from partus.data.augment import build_augment
    from partus.train.ssl import _MoCo, _Views

    torch.manual_seed(0)
    cfg = _cfg(method="moco", queue=32, dim=16, ema=0.9)
    net = _MoCo(_TinyEncoder(), cfg)
    ds = _Views(images, list(range(len(images))), cfg)
    ds.compose = build_augment(
        AugmentConfig(rotate_deg=5, scale=0, translate=0, p_affine=1.0, p_color=0, p_gamma=0, p_blur=0, p_speckle=0)
    )
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    losses = []
    for epoch in range(12):
        ds.epoch = epoch
        batches = torch.utils.data.DataLoader(
            ds, batch_size=8, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(epoch)
        )
        total = []
        for a, b, g in batches:
            loss = net.loss(a, b, g)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total.append(loss.item())
        losses.append(np.mean(total))
    assert np.mean(losses[-3:]) < losses[1] - 0.15, losses


def test_clip_mates_are_not_negatives():
    """Four frames of one clip against a queue holding their own keys: every entry is a clip-mate, so the
    only logit left is the positive one and the loss is exactly 0; the same keys from another clip are
    negatives and the loss is large."""
    cfg = _cfg(method="moco", queue=8, dim=16)
    net = _build(cfg)
    torch.manual_seed(0)
    a = torch.rand(4, 1, 64, 64)
    with torch.no_grad():
        k = net._keys(a)
    clip = torch.full((4,), 5)
    net.queue.copy_(torch.cat([k, k]))
    net.queue_group.fill_(5)
    assert net.loss(a, a, clip).item() == pytest.approx(0.0, abs=1e-6)
    net.queue.copy_(torch.cat([k, k]))
    net.queue_group.fill_(9)
    assert net.loss(a, a, clip).item() > 1.0  # >= log 3: two copies of each positive among the negatives


@pytest.mark.parametrize("method", ["moco", "mim"])
def test_the_losses_make_their_tensors_on_the_data_device(method):
    """Nothing in a loss step may land on the default device instead of the data's (on a GPU that is a
    device mismatch): a default device other than the data's reproduces that on the CPU."""
    net = _build(_cfg(method=method, queue=8, dim=16))
    torch.manual_seed(0)
    a, b, groups = torch.rand(4, 1, 64, 64), torch.rand(4, 1, 64, 64), torch.arange(4)
    with torch.device("meta"):
        loss = net.loss(a, b, groups)
    assert loss.device.type == "cpu" and torch.isfinite(loss)


def test_a_killed_run_resumes(images, tmp_path):
    out = tmp_path / "enc.pth"
    cfg = _cfg(method="mim", epochs=3)

    def kill(epoch, loss, progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(images, out, config=cfg, on_epoch=kill)
    state = torch.load(tmp_path / "enc.pth.state", weights_only=False)
    assert state["epoch"] == 1 and not out.exists()
    res = pretrain(images, out, config=cfg)
    assert res.epochs == 3 and res.losses[0] == state["losses"][0]  # continued, not restarted
    assert out.is_file() and not (tmp_path / "enc.pth.state").exists()
    # another configuration does not pick up a foreign state: it starts afresh
    with pytest.raises(KeyboardInterrupt):
        pretrain(images, out, config=cfg, on_epoch=kill)
    foreign = torch.load(tmp_path / "enc.pth.state", weights_only=True)
    other = pretrain(images, out, config=_cfg(method="mim", epochs=2, lr=0.02))
    assert other.epochs == 2 and other.losses[0] != foreign["losses"][0]


def test_refuses_too_few_scans_and_draws_whole_batches(images, tmp_path):
    with pytest.raises(ValueError, match="at least 8 scans"):
        pretrain(images[:7], tmp_path / "x.pth", config=_cfg())
    # fewer scans than a batch: the batch shrinks to them, so every epoch trains
    res = pretrain(images[:10], tmp_path / "y.pth", config=_cfg(method="mim", epochs=2, batch_size=32))
    assert res.steps == 2 and all(np.isfinite(res.losses))
    with pytest.raises(ValueError, match="sub-batches"):
        pretrain(images, tmp_path / "z.pth", config=_cfg(bn_splits=8))


def test_frozen_batchnorm_keeps_the_starting_statistics(images, tmp_path):
    from partus.train.adapt import load_trainable, save_encoder

    init = save_encoder(load_trainable()[1], tmp_path / "init.pth")
    start = torch.load(init, weights_only=True)
    for freeze in (True, False):
        out = tmp_path / f"enc_{freeze}.pth"
        pretrain(images, out, config=_cfg(method="mim", epochs=1, init=str(init), freeze_bn=freeze, lr=0.05))
        end = torch.load(out, weights_only=True)
        bn = [k for k in end if end[k].ndim == 1]  # the encoder's 1-D tensors are all BatchNorm's
        same = all(torch.equal(end[k], start[k].to(end[k].dtype)) for k in bn)
        assert same is freeze
        assert not torch.equal(end["features.0.0.weight"], start["features.0.0.weight"])  # the convolutions learn
