"""The standard-plane head of a multitask network, trained on its frozen encoder (a linear probe).

Paper 5 classifies standard planes with a head on the segmentation network's shared encoder. partus adds
``standard_plane`` as the last ``cls`` output of a trained :class:`~partus.models.MultiTaskNet`: a small
MLP (:class:`~partus.models.multitask.PlaneHead`) on the pooled encoder map and pooled statistics of the
dense heads (:func:`~partus.models.multitask.plane_features`). The encoder, the decoder, the dense heads
and the orientation logit are kept exactly, so every measurement the network made before is unchanged,
bit for bit; only the new head is fitted.

Training data (weak supervision, :mod:`partus.data.planes`): labelled scans are positives, as displayed,
mirrored, and under random acquisition shifts (a standard plane stays one on another scanner); negatives
are the non-standard-plane families built from the same scans or drawn. The head is fitted full-batch
(Adam, weight decay, dropout, classes balanced) on the frozen network's features, standardised by their
training mean and deviation (kept in the head).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.planes import NON_STANDARD, non_standard
from ..data.records import Record
from ..data.shift import apply_shift, mirror, shift_names
from ..errors import InputError
from ..models.multitask import N_STATS, MultiTaskNet, PlaneHead, plane_features
from ..preprocess import resize_image, to_input

__all__ = [
    "PLANE",
    "PlaneSet",
    "add_plane_head",
    "fit_plane_head",
    "plane_inputs",
    "plane_scores",
    "plane_set",
    "save_with_plane_head",
]

PLANE = "standard_plane"


@dataclass
class PlaneSet:
    """Images with plane labels (1 standard, 0 not), each with its family (``plain``, ``mirrored``,
    ``shift:<name>`` or a :data:`~partus.data.planes.NON_STANDARD` name) and source record index."""

    images: list[np.ndarray]
    labels: np.ndarray
    families: list[str]
    source: np.ndarray


def plane_set(
    records: Sequence[Record], *, shifted: int = 2, families: Sequence[str] = NON_STANDARD, seed: int = 0
) -> PlaneSet:
    """Positives (each scan plain, mirrored and under ``shifted`` random shifts of the suite) and one
    negative of every family per scan."""
    names = shift_names()
    images, labels, fams, src = [], [], [], []

    def add(img: np.ndarray, label: int, family: str, i: int) -> None:
        images.append(img)
        labels.append(label)
        fams.append(family)
        src.append(i)

    for i, r in enumerate(records):
        rng = np.random.default_rng([seed, i])
        add(r.image, 1, "plain", i)
        add(mirror(r.image, r.points).image, 1, "mirrored", i)
        for name in rng.choice(names, size=min(shifted, len(names)), replace=False):
            add(apply_shift(str(name), r.image, r.points, seed=seed + 1, index=i).image, 1, f"shift:{name}", i)
        for fam in families:
            if r.mask is None and fam in ("no_symphysis", "no_head", "neither"):
                continue
            add(non_standard(fam, r.image, r.points, r.mask, seed=seed, index=i), 0, fam, i)
    return PlaneSet(images, np.asarray(labels, np.int64), fams, np.asarray(src))


@torch.no_grad()
def plane_inputs(model: MultiTaskNet, images: Sequence[np.ndarray], input_size: int, batch: int = 64) -> np.ndarray:
    """The plane head's input features ``(N, C + N_STATS)`` of images, preprocessed as at inference."""
    model.eval()
    out = []
    for s in range(0, len(images), batch):
        x = torch.from_numpy(to_input(np.stack([resize_image(im, input_size) for im in images[s : s + batch]])))
        pooled, dense = model.trunk(x)
        out.append(plane_features(pooled, dense).numpy())
    return np.concatenate(out)


def fit_plane_head(
    x: np.ndarray, y: np.ndarray, *, hidden: int = 32, steps: int = 600, lr: float = 5e-3, seed: int = 0
) -> PlaneHead:
    """A :class:`PlaneHead` fitted on features ``x`` and labels ``y`` (1 standard plane), classes balanced."""
    y = np.asarray(y, np.float32)
    if x.ndim != 2 or len(x) != len(y) or not (0 < y.sum() < len(y)):
        raise InputError("plane data", "need features (N, C) and labels with both classes")
    torch.manual_seed(seed)
    head = PlaneHead(x.shape[1], hidden)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(y)
    head.mean.copy_(xt.mean(0))
    head.std.copy_(xt.std(0).clamp_min(1e-2))  # a near-constant feature must not amplify rounding noise
    weight = torch.where(yt > 0, 0.5 / yt.mean(), 0.5 / (1 - yt.mean()))
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-3)
    head.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(xt).squeeze(1), yt, weight=weight)
        loss.backward()
        opt.step()
    return head.eval()


@torch.no_grad()
def plane_scores(head: PlaneHead, x: np.ndarray) -> np.ndarray:
    """P(standard plane) of features ``x``."""
    return torch.sigmoid(head(torch.from_numpy(np.asarray(x, np.float32))).squeeze(1)).numpy().astype(np.float64)


def add_plane_head(checkpoint: str | Path, head: PlaneHead, out: str | Path) -> Path:
    """A copy of a multitask Lightning checkpoint with ``standard_plane`` appended to ``cls_names`` and
    ``head`` as its :class:`PlaneHead`; every other weight is the checkpoint's."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = ckpt["hyper_parameters"]["config"]
    if cfg["model"]["name"] != "multitask_net":
        raise InputError(checkpoint, f"a standard-plane head needs a multitask_net, not {cfg['model']['name']}")
    kwargs = dict(cfg["model"].get("kwargs") or {})
    names = list(kwargs.get("cls_names") or ["mirrored"])
    if PLANE in names:
        raise InputError(checkpoint, "already has a standard_plane output")
    sd = ckpt["state_dict"]
    width = sd["model.cls_head.1.weight"].shape[1] + N_STATS
    if head.mean.numel() != width:
        raise InputError("head", f"expected a head on {width} features, got {head.mean.numel()}")
    kwargs["cls_names"] = [*names, PLANE]
    kwargs["plane_hidden"] = head.mlp[1].out_features
    cfg["model"]["kwargs"] = kwargs
    return save_with_plane_head(ckpt, head, out)


def save_with_plane_head(ckpt: dict, head: PlaneHead | None, out: str | Path) -> Path:
    """Write a loaded Lightning checkpoint (dict) with ``head`` (if any) as its plane head's weights,
    atomically. Optimiser and scheduler states are dropped: the head was fitted outside them, nothing is to
    resume."""
    from ..io import atomic_path

    for key, value in ({} if head is None else head.state_dict()).items():
        ckpt["state_dict"][f"model.plane_head.{key}"] = value.detach().clone()
    for key in ("optimizer_states", "lr_schedulers"):
        ckpt.pop(key, None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    return out


def iugc2024_plane_frames(folder: str | Path) -> list[tuple[np.ndarray, int]]:
    """Real labelled frames: images named ``<video>_<frame>_<class>.png`` (IUGC 2024; class 6 is the
    standard plane, 3-5 are not) as ``(gray uint8, label)``."""
    from ..io import as_gray_uint8, parse_iugc2024_name, read_any

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise InputError(folder, "no frame images (<video>_<frame>_<class>.png) found")
    out = []
    for p in files:
        label = int(parse_iugc2024_name(p.name)[2] == 6)
        out.append((as_gray_uint8(read_any(p).pixels, str(p)), label))
    return out


def train_plane_head(
    checkpoint: str | Path,
    out: str | Path,
    *,
    records: Sequence[Record] = (),
    frames: Sequence[tuple[np.ndarray, int]] = (),
    hidden: int = 32,
    steps: int = 600,
) -> tuple[Path, dict]:
    """Fit the standard-plane head of a multitask checkpoint on the weak plane set of ``records`` plus real
    labelled ``frames`` and write the extended checkpoint to ``out``; returns it and in-sample figures."""
    from ..clsmetrics import classification_metrics
    from .module import LandmarkModule

    ps = plane_set(records) if records else PlaneSet([], np.zeros(0, np.int64), [], np.zeros(0, np.int64))
    images = ps.images + [f for f, _ in frames]
    labels = np.r_[ps.labels, [lab for _, lab in frames]].astype(np.int64)
    module = LandmarkModule.load_from_checkpoint(checkpoint, map_location="cpu")
    x = plane_inputs(module.model, images, int(module.cfg.data.input_size))
    head = fit_plane_head(x, labels, hidden=hidden, steps=steps)
    path = add_plane_head(checkpoint, head, out)
    scores = plane_scores(head, x)
    return path, {"n": len(labels), "positives": int(labels.sum()), **classification_metrics(labels, scores)}
