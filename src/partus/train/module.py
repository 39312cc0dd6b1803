"""One LightningModule for every model family: the loss follows ``model.kind``; validation measures
landmark error and AoP error in ORIGINAL pixels, exactly as the cross-validation report does."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from ..config import Config
from ..evaluate import aop_errors, point_errors
from ..losses import DynamicLossScaler, aop_loss, dsnt_loss, heatmap_mse, reduce, segmentation_loss
from ..models import create_model
from ..models.dsnt import dsnt, spatial_softmax
from .inference import forward_tta, outputs_to_landmarks

__all__ = ["LandmarkModule"]


class LandmarkModule(L.LightningModule):
    """Wraps a registered model; hyper-parameters are the resolved :class:`~partus.config.Config`."""

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg = Config(**config)
        self.model = create_model(self.cfg.model.name, **self.cfg.model.kwargs)
        self.kind: str = self.model.kind
        if self.kind == "multitask":
            scaled_aop = self.cfg.loss.aop_weight > 0 and self.cfg.loss.aop_dynamic
            tasks = ("seg", "heatmap", "dsnt", "cls") + ("aop",) * scaled_aop
            self.scaler = DynamicLossScaler(tasks, alpha=self.cfg.loss.dynamic_alpha)
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, batch: dict) -> torch.Tensor:
        x = batch["image"]
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self(x)
        if self.kind == "multitask":
            return self._multitask_loss(logits, batch)
        if self.kind == "segmentation":
            per = segmentation_loss(logits, batch["mask"])
        elif self.kind == "dsnt":
            per = dsnt_loss(logits, self._dense_target(batch), sigma=self.cfg.data.sigma, reg=self.cfg.loss.dsnt_reg,
                            reg_weight=self.cfg.loss.dsnt_reg_weight)  # fmt: skip
        else:
            per = heatmap_mse(logits, batch["heatmaps"])
        return reduce(per, batch.get("weight"))

    def _dense_target(self, batch: dict) -> torch.Tensor:
        s = self.model.output_stride
        return (batch["points"] + 0.5) / s - 0.5  # input grid -> heatmap grid (pixel edges align)

    def _aop_loss(self, logits: torch.Tensor, target: torch.Tensor, orig_size: torch.Tensor, w) -> torch.Tensor:
        """The weighted AoP task on the heatmap grid, stretched back to each scan's aspect ratio."""
        aspect = orig_size.flip(-1).to(logits.dtype)[:, None, :] / orig_size.amax()
        aop = aop_loss(dsnt(spatial_softmax(logits)) * aspect, target * aspect)
        return self.cfg.loss.aop_weight * reduce(aop, w)

    def _multitask_loss(self, out: dict, batch: dict) -> torch.Tensor:
        """Segmentation + heatmap + DSNT on scans in the usual display, orientation on all; scaled dynamically."""
        mirrored = batch["mirrored"].to(out["cls"].dtype)
        w = (1.0 - mirrored) * (batch["weight"] if "weight" in batch else 1.0)
        dense = bool((w > 0).any())  # a batch of mirrored scans only has no dense-task samples
        col = self.model.cls_names.index("mirrored")
        target = self._dense_target(batch)
        losses = {
            "seg": reduce(segmentation_loss(out["seg"], batch["mask"]), w) if dense else None,
            "heatmap": reduce(heatmap_mse(out["heatmap"], batch["heatmaps"]), w) if dense else None,
            "dsnt": reduce(dsnt_loss(out["dsnt"], target, sigma=self.cfg.data.sigma,
                                     reg=self.cfg.loss.dsnt_reg, reg_weight=self.cfg.loss.dsnt_reg_weight), w)
            if dense else None,
            "cls": torch.nn.functional.binary_cross_entropy_with_logits(out["cls"][:, col], mirrored),
        }  # fmt: skip
        if self.cfg.loss.aop_weight > 0:
            losses["aop"] = self._aop_loss(out["dsnt"], target, batch["orig_size"], w) if dense else None
        if self.training:
            self.log_dict({f"loss_{k}": v.detach() for k, v in losses.items() if v is not None}, on_step=False,
                          on_epoch=True, batch_size=len(mirrored))  # fmt: skip
        fixed = None if self.cfg.loss.aop_dynamic else losses.pop("aop", None)  # at its own weight, unscaled
        total = self.scaler(losses)
        return total if fixed is None else total + fixed

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss = self._loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["image"]))
        out = forward_tta(self.model, batch["image"], tta_flip=self.cfg.decode.tta_flip,
                          anatomical=self.cfg.data.augment.flip_policy == "anatomical")  # fmt: skip
        sizes = [tuple(int(v) for v in s) for s in batch["orig_size"].cpu()]
        pts, _, _ = outputs_to_landmarks(out, self.kind, sizes, method=self.cfg.decode.method,
                                         sigma=self.cfg.data.sigma)  # fmt: skip
        self._val.append((pts, batch["orig_points"].cpu().numpy().astype(float)))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        pred = np.concatenate([p for p, _ in self._val])
        gt = np.concatenate([g for _, g in self._val])
        self._val.clear()
        err = point_errors(pred, gt)
        missing = ~np.isfinite(err).all(axis=1)
        penalty = 100.0  # an unmeasurable prediction must not look good: counted as a 100 px miss
        mre = float(np.where(np.isfinite(err), err, penalty).mean())
        aop = np.abs(aop_errors(pred, gt))
        aop_mae = float(np.where(np.isfinite(aop), aop, 180.0).mean())
        self.log_dict({"val_mre": mre, "val_aop_mae": aop_mae, "val_missing": float(missing.mean())},
                      prog_bar=True)  # fmt: skip

    def configure_optimizers(self):
        t = self.cfg.train
        params = self.model.parameters()
        if t.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=True)
        elif t.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        if t.scheduler == "none":
            return opt
        if t.scheduler == "cosine":
            horizon = t.max_steps if t.max_steps > 0 else max(1, self.trainer.estimated_stepping_batches)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=horizon, eta_min=t.lr * 0.01)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if t.scheduler == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=t.step_size, gamma=t.gamma)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.gamma, patience=max(1, t.step_size // 3))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_mre", "interval": "epoch"}}
