"""Torch dataset over in-memory :class:`~partus.data.records.Record` s.

Order of operations per sample: optional mirror (:func:`~partus.data.augment.hflip`, at original
resolution so the official rule sees the real mask) -> resize to the network input (image area/linear,
mask nearest, points via :func:`partus.decode.to_grid_coords`) -> albumentations (affine, photometric)
-> another scanner's screen (``p_fan``, :func:`~partus.data.augment.random_fan`) -> label noise
(training only) -> targets. Augmentation is seeded by ``(seed, epoch, index)``, so an interrupted run
resumed at an epoch boundary replays exactly the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..decode import to_grid_coords
from ..preprocess import resize_image, to_input
from .augment import AugmentConfig, apply_augment, build_augment, hflip, random_fan
from .records import Record
from .targets import gaussian_heatmaps, perturb_points
from .turn import turn_symphysis

__all__ = ["EpochSampler", "LandmarkDataset", "aop_band_weights"]


def aop_band_weights(points: Sequence[np.ndarray], edges: Sequence[float] = (90.0, 110.0, 130.0)) -> np.ndarray:
    """Per-record sampling weights that give every ground-truth AoP band (cut at ``edges``) equal total
    weight: unseen scans are earlier in labour than psfhs-dev, and high angles were underestimated."""
    from ..geometry import angle_of_progression

    pts = np.asarray(points, float)
    aop = angle_of_progression(pts[:, 0], pts[:, 1], pts[:, 2])
    band = np.searchsorted(np.asarray(edges, float), aop, side="right")
    counts = np.bincount(band, minlength=len(edges) + 1).astype(float)
    return 1.0 / counts[band]


class LandmarkDataset(Dataset):
    """Samples as dicts of tensors.

    Keys: ``image`` (1, S, S) float32 in [0, 1]; ``points`` (3, 2) input-grid ``(x, y)`` (after label
    noise when training); ``heatmaps`` (3, S/stride, S/stride) unit Gaussians at the points;
    ``mask`` (S, S) int64 (zeros when the record has none) and ``has_mask``; ``index``; ``weight``
    (the sample's loss weight: the record's ``weight`` unless set in ``weights``); ``mirrored`` (1.0 when
    the scan was shown mirrored for the orientation head, see ``orientation_p``); ``orig_points`` (3, 2) and
    ``orig_size`` (2,) = (H, W) of the unaugmented record, for evaluation in original pixels.
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        input_size: int = 256,
        stride: int = 1,
        sigma: float = 2.0,
        augment: AugmentConfig | None = None,
        label_noise: float = 0.0,
        orientation_p: float = 0.0,
        seed: int = 0,
    ):
        if input_size % stride:
            raise ValueError(f"input_size {input_size} must be divisible by stride {stride}")
        self.records = list(records)
        self.size, self.stride, self.sigma = input_size, stride, sigma
        self.params = augment
        self.compose = build_augment(augment) if augment is not None else None
        self.label_noise, self.seed, self.epoch = label_noise, seed, 0
        self.orientation_p = float(orientation_p)
        #: per-sample loss weights: each record's ``weight``; paper 1's error-weighted fine-tuning resets them
        self.weights = np.array([r.weight for r in self.records], np.float32)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def _seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        r = self.records[index]
        img, pts, mask = r.image, np.asarray(r.points, float), r.mask
        rng = np.random.default_rng(self._seed(index))
        if self.params is not None and rng.random() < self.params.p_hflip:
            img, pts, mask = hflip(img, pts, mask, self.params.flip_policy)
        mirrored = bool(self.orientation_p) and rng.random() < self.orientation_p
        if mirrored:  # an orientation-head sample: shown as a mirrored display, dense losses masked
            img, pts, mask = hflip(img, pts, mask, "anatomical")
        h0, w0 = img.shape
        s = self.size
        img = resize_image(img, s)
        if mask is not None and mask.shape != (s, s):
            mask = cv2.resize(mask, (s, s), interpolation=cv2.INTER_NEAREST)
        pts = to_grid_coords(pts, (h0, w0), (s, s))
        if self.params is not None and self.params.p_turn > 0 and rng.random() < self.params.p_turn:
            img, pts, mask, _ = turn_symphysis(img, pts, mask, rng.uniform(-1.0, 1.0) * self.params.turn_deg)
        if self.compose is not None:
            img, pts, mask = apply_augment(self.compose, img, pts, mask, self._seed(index) ^ 0x5EED)
            if self.params.p_fan > 0 and rng.random() < self.params.p_fan:
                img = random_fan(img, pts, rng, mask)
            pts = perturb_points(pts, self.label_noise, rng)
        g = s // self.stride
        hm = gaussian_heatmaps(to_grid_coords(pts, (s, s), (g, g)), (g, g), self.sigma)
        return {
            "image": torch.from_numpy(to_input(img)[0]),
            "points": torch.from_numpy(pts.astype(np.float32)),
            "heatmaps": torch.from_numpy(hm),
            "mask": torch.from_numpy(
                np.zeros((s, s), np.int64) if mask is None else np.ascontiguousarray(mask, dtype=np.int64)
            ),
            "has_mask": torch.tensor(mask is not None),
            "index": torch.tensor(index),
            "weight": torch.tensor(self.weights[index]),
            "mirrored": torch.tensor(float(mirrored)),
            "orig_points": torch.from_numpy(np.asarray(r.points, np.float32)),
            "orig_size": torch.tensor([h0, w0]),
        }


class EpochSampler(Sampler[int]):
    """A shuffling sampler whose order depends only on ``(seed, epoch)``: exact resume after interruption.

    Lightning calls :meth:`set_epoch` at the start of every training epoch.

    With ``weights`` (one per item), each epoch draws ``n`` items with replacement in proportion to them
    (e.g. to balance AoP bands, :func:`aop_band_weights`).
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, weights: np.ndarray | None = None):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.p = None
        if weights is not None and not shuffle:
            raise ValueError("weights need shuffle=True (weighted sampling draws a new order each epoch)")
        if weights is not None:
            w = np.asarray(weights, float)
            if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"weights must be {n} finite non-negative numbers with a positive sum")
            self.p = w / w.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.p is not None:
            return iter(rng.choice(self.n, size=self.n, replace=True, p=self.p).tolist())
        return iter(rng.permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n
