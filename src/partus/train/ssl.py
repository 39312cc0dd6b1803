"""Self-supervised pretraining of the shared MobileNetV2 encoder on unlabelled scans (``partus pretrain``).

Two methods, both starting from a trained encoder (ImageNet here, the shipped network's with ``partus
pretrain``'s default: domain-adaptive pretraining) and both
writing the encoder in torchvision's ``features.*`` naming, so ``model.encoder_weights: FILE`` of
``partus train`` loads it like the ImageNet file:

``moco``
    MoCo v2 (He et al. 2020, Chen et al. 2020; paper 3): a query encoder and a momentum (EMA) key
    encoder, each with a 2-layer MLP projection, InfoNCE against a queue of past keys at temperature
    ``tau``. Ultrasound-safe views: affine jitter, gain/contrast/gamma, blur and speckle, no flips (a
    mirrored display is something the network must still tell apart). Sequence mining (paper 3): a
    scan's second view is, with probability ``p_sequence``, another frame of the same clip (or
    ``near_dup_cluster``), and queue entries of the query's own group are never used as negatives. With
    ``bn_splits`` > 1 the encoders' BatchNorm sees sub-batches, shuffled for the key encoder (MoCo's shuffle
    BN on one device); the default 1 is plain BatchNorm, as the projector's BatchNorm (MoCo v3) needs
    whole batches on small data.
``mim``
    Masked image modelling (paper 2's MAE idea, for a CNN): a share ``mask_ratio`` of 16-px patches is
    replaced by the mean gray level and the U-Net (encoder + decoder) reconstructs their pixels; the loss
    is the squared error on the masked patches only.

Training stops after ``epochs`` or ``minutes``, whichever comes first; the learning rate follows a cosine
over that horizon. A state file beside the output (``OUT.state``) is written every epoch, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import AugmentConfig
from ..data.augment import apply_augment, build_augment
from ..preprocess import resize_image, to_input

__all__ = ["PretrainConfig", "PretrainResult", "pretrain"]

#: Views for contrastive pretraining: stronger photometric jitter than supervised training, no flips.
VIEW_AUGMENT = AugmentConfig(rotate_deg=20, scale=0.3, translate=0.12, p_affine=1.0, brightness=0.4, contrast=0.4,
                             p_color=0.8, gamma=(60, 160), p_gamma=0.5, p_blur=0.5, speckle=0.3,
                             p_speckle=0.5)  # fmt: skip


@dataclass
class PretrainConfig:
    """Hyper-parameters of :func:`pretrain` (MoCo v2 defaults scaled to one CPU and a few hundred scans)."""

    method: str = "moco"  # "moco" or "mim"
    input_size: int = 128
    batch_size: int = 32
    epochs: int = 100
    minutes: float | None = 20.0  # wall-clock budget (None: epochs only)
    lr: float = 0.01  # SGD, momentum 0.9, cosine to 0 over the budget
    weight_decay: float = 1e-4
    tau: float = 0.2
    queue: int = 2048
    ema: float = 0.99
    dim: int = 128
    p_sequence: float = 0.5
    bn_splits: int = 1  # BatchNorm sub-batches of the MoCo encoders (shuffled for the key encoder)
    mask_ratio: float = 0.6
    patch: int = 16
    init: str | None = "imagenet"  # "imagenet", a torchvision MobileNetV2 .pth, or None (random)
    #: Keep the encoder's BatchNorm layers as ``init`` has them (statistics and affine parameters): trained
    #: on a few hundred scans they drift (their biases most), and a supervised run from such an encoder
    #: measured far worse (benchmarks/ACCURACY.md). Ignored without ``init``.
    freeze_bn: bool = True
    seed: int = 0
    threads: int = 0


@dataclass
class PretrainResult:
    path: Path
    epochs: int
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss per epoch


class _Views(torch.utils.data.Dataset):
    """Two augmented views of scan ``i`` (the second from another scan of its group with ``p_sequence``)."""

    def __init__(self, images: Sequence[np.ndarray], groups: Sequence[int], cfg: PretrainConfig):
        self.images = [resize_image(im, cfg.input_size) for im in images]
        self.groups = np.asarray(groups)
        members: dict[int, list[int]] = {}
        for i, g in enumerate(self.groups):
            members.setdefault(int(g), []).append(i)
        self.members = members
        self.cfg, self.epoch = cfg, 0
        self.compose = build_augment(VIEW_AUGMENT)

    def __len__(self) -> int:
        return len(self.images)

    def _view(self, i: int, seed: int) -> torch.Tensor:
        img, _, _ = apply_augment(self.compose, self.images[i], np.zeros((1, 2)), None, seed)
        return torch.from_numpy(to_input(img)[0])

    def __getitem__(self, i: int):
        seed = int(np.random.SeedSequence([self.cfg.seed, self.epoch, i]).generate_state(1)[0])
        rng = np.random.default_rng(seed)
        j = i
        mates = self.members[int(self.groups[i])]
        if len(mates) > 1 and rng.random() < self.cfg.p_sequence:
            j = int(rng.choice([m for m in mates if m != i]))
        return self._view(i, seed), self._view(j, seed ^ 0x5EED), int(self.groups[i])


class _Embed(nn.Module):
    def __init__(self, encoder: nn.Module, dim: int):
        super().__init__()
        self.encoder = encoder
        # BatchNorm in the projector (as MoCo v3 / SimCLR): it removes the common component of pooled features,
        # without which a fresh network maps every scan to nearly one direction and InfoNCE cannot escape it
        self.proj = nn.Sequential(
            nn.Linear(encoder.channels[-1], 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Linear(512, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ..models.mobilenet import IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD

        pooled = self.encoder((x - IMAGENET_GRAY_MEAN) / IMAGENET_GRAY_STD)[-1].mean(dim=(2, 3))
        return F.normalize(self.proj(pooled), dim=1)


class _MoCo(nn.Module):
    def __init__(self, encoder: nn.Module, cfg: PretrainConfig):
        super().__init__()
        self.q = _Embed(encoder, cfg.dim)
        self.k = copy.deepcopy(self.q).requires_grad_(False)
        g = torch.Generator().manual_seed(cfg.seed)
        self.register_buffer("queue", F.normalize(torch.randn(cfg.queue, cfg.dim, generator=g), dim=1))
        self.register_buffer("queue_group", torch.full((cfg.queue,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.cfg = cfg

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """Key embeddings with shuffled BatchNorm sub-batches (no batch-statistics shortcut)."""
        perm = torch.randperm(len(x), device=x.device)
        chunks = [self.k(c) for c in torch.tensor_split(x[perm], self.cfg.bn_splits)]
        out = torch.empty(len(x), self.cfg.dim, device=x.device)
        out[perm] = torch.cat(chunks)
        return out

    def loss(self, a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        q = torch.cat([self.q(c) for c in torch.tensor_split(a, self.cfg.bn_splits)])
        with torch.no_grad():
            for pq, pk in zip(self.q.parameters(), self.k.parameters(), strict=True):
                pk.mul_(self.cfg.ema).add_(pq.detach(), alpha=1 - self.cfg.ema)
            k = self._keys(b)
        pos = (q * k).sum(1, keepdim=True)
        neg = q @ self.queue.clone().T  # a copy: the queue is updated in place below
        neg = neg.masked_fill(
            groups[:, None] == self.queue_group.clone()[None, :], float("-inf")
        )  # mates are no negatives
        logits = torch.cat([pos, neg], 1) / self.cfg.tau
        loss = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
        with torch.no_grad():  # enqueue
            n, size = len(k), len(self.queue)
            idx = (self.ptr + torch.arange(n, device=self.ptr.device)) % size
            self.queue[idx] = k
            self.queue_group[idx] = groups
            self.ptr.copy_((self.ptr + n) % size)
        return loss

    @property
    def encoder(self) -> nn.Module:
        return self.q.encoder

    @property
    def encoders(self) -> list[nn.Module]:
        return [self.q.encoder, self.k.encoder]


class _MIM(nn.Module):
    def __init__(self, unet: nn.Module, cfg: PretrainConfig):
        super().__init__()
        self.unet, self.cfg = unet, cfg

    def loss(self, a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        n, _, h, w = a.shape
        p = self.cfg.patch
        keep = (torch.rand(n, 1, h // p, w // p, device=a.device) >= self.cfg.mask_ratio).float()
        keep = F.interpolate(keep, size=(h, w), mode="nearest")
        masked = a * keep + 0.449 * (1 - keep)
        recon = torch.sigmoid(self.unet(masked))
        hidden = 1 - keep
        return ((recon - a) ** 2 * hidden).sum() / hidden.sum().clamp_min(1.0)

    @property
    def encoder(self) -> nn.Module:
        return self.unet.encoder

    @property
    def encoders(self) -> list[nn.Module]:
        return [self.unet.encoder]


def _build(cfg: PretrainConfig) -> nn.Module:
    from ..models import MobileNetUNet
    from .fit import _load_encoder

    unet = MobileNetUNet(out_channels=1, features=8, kind="segmentation", imagenet_norm=True)
    if cfg.init:
        _load_encoder(unet, cfg.init)
    if cfg.method == "moco":
        return _MoCo(unet.encoder, cfg)
    if cfg.method == "mim":
        return _MIM(unet, cfg)
    raise ValueError(f"method must be 'moco' or 'mim', got {cfg.method!r}")


def pretrain(
    images: Sequence[np.ndarray],
    out: str | os.PathLike,
    *,
    groups: Sequence[str | None] | None = None,
    config: PretrainConfig | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> PretrainResult:
    """Pretrain the encoder on ``images`` (gray uint8) and write it to ``out`` (a ``.pth`` state dict).

    Parameters
    ----------
    groups : one per image, optional
        Clip or cluster of each image (``None``: its own); images of one group are positives for ``moco``.
    on_epoch : callable, optional
        ``(epoch, mean loss, progress 0..1)`` after every epoch.

    Returns
    -------
    PretrainResult
        Also written beside ``out`` as ``<out>.json``.
    """
    from ..io import atomic_path, write_json

    cfg = config or PretrainConfig()
    if len(images) < 8:
        raise ValueError(f"pretraining needs at least 8 scans, got {len(images)}")
    if len(images) < cfg.batch_size:  # every epoch draws whole batches only
        cfg = replace(cfg, batch_size=len(images))
    if cfg.bn_splits < 1 or cfg.batch_size // cfg.bn_splits < 2:
        raise ValueError(f"bn_splits {cfg.bn_splits} leaves BatchNorm sub-batches of fewer than 2 scans")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
    names = [f"#{i}" if g is None else str(g) for i, g in enumerate(groups or [None] * len(images))]
    ids = {g: k for k, g in enumerate(dict.fromkeys(names))}
    ds = _Views(images, [ids[g] for g in names], cfg)
    net = _build(cfg)
    encoders = net.encoders if cfg.freeze_bn and cfg.init else []
    frozen = [m for enc in encoders for m in enc.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in frozen:
        m.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    state_file = out.with_name(out.name + ".state")
    meta = asdict(cfg) | {"n_images": len(images)}
    epoch, step, elapsed, losses = 0, 0, 0.0, []
    if state_file.is_file():
        st = torch.load(state_file, map_location="cpu", weights_only=True)
        if st["meta"] == meta:
            net.load_state_dict(st["net"])
            opt.load_state_dict(st["opt"])
            epoch, step, elapsed, losses = st["epoch"], st["step"], st["elapsed"], st["losses"]
    budget = (cfg.minutes or math.inf) * 60.0
    steps_per_epoch = len(ds) // cfg.batch_size or 1
    total_steps = cfg.epochs * steps_per_epoch
    net.train()
    for m in frozen:  # running statistics kept too
        m.eval()
    while epoch < cfg.epochs and elapsed < budget:
        ds.epoch = epoch
        loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                             generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch),
                                             )  # fmt: skip
        start, total = time.perf_counter(), []
        for a, b, g in loader:
            progress = min(1.0, max(step / total_steps, (elapsed + time.perf_counter() - start) / budget))
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
            loss = net.loss(a, b, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total.append(loss.item())
            step += 1
            if elapsed + time.perf_counter() - start >= budget:
                break
        elapsed += time.perf_counter() - start
        epoch += 1
        losses.append(float(np.mean(total)) if total else float("nan"))
        with atomic_path(state_file) as tmp:
            torch.save({"meta": meta, "net": net.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                        "step": step, "elapsed": elapsed, "losses": losses}, tmp)  # fmt: skip
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], min(1.0, max(epoch / cfg.epochs, elapsed / budget)))
    weights = {f"features.{k}": v.clone() for k, v in net.encoder.features.state_dict().items()}
    with atomic_path(out) as tmp:
        torch.save(weights, tmp)
    result = PretrainResult(out, epoch, step, elapsed, losses)
    write_json(out.with_name(out.name + ".json"), meta | {"epochs_run": epoch, "steps": step,
                                                          "seconds": round(elapsed, 1), "losses": losses})  # fmt: skip
    state_file.unlink(missing_ok=True)
    return result
