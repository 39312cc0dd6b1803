"""One exported partus model on ONNX Runtime: its session, what its metadata says about it (kind, input
size, heads, classification outputs), activated outputs, and landmarks decoded from its maps. A
:class:`~partus.predict.Predictor` fuses one or several of them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .decode import decode_heatmaps, peak_mass, to_image_coords
from .errors import InputError
from .export import open_model
from .refine import Refiner, refiner_path

__all__ = ["OnnxModel", "activate"]


class OnnxModel:
    """One exported model: an ONNX Runtime session plus what its metadata says about it.

    A single-task model has one dense output (``kind`` heatmap, dsnt or segmentation); a multitask model
    has one per head (``heads``: name -> kind) and image-level ``cls`` logits named by ``cls_names``.
    ``refiner`` is its symphysis refiner (:mod:`partus.refine`, ``NAME.refiner.onnx`` beside it) or None.
    """

    def __init__(self, path: str | os.PathLike, threads: int, spinning: bool = False):
        self.path = Path(path)
        self.session, self.meta = open_model(self.path, threads=threads, spinning=spinning)
        if self.meta.get("kind") == "refiner":
            raise InputError(self.path, "a symphysis refiner, not a network: pass the network it sits beside")
        self.kind: str = self.meta["kind"]
        self.size: int = int(self.meta["input_size"])
        self.anatomical = self.meta.get("flip_policy") == "anatomical"
        self.heads: dict[str, str] = dict(self.meta.get("heads") or {"output": self.kind})
        self.cls_names: list[str] = list(self.meta.get("cls_names") or [])
        self.outputs = [o.name for o in self.session.get_outputs()]
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.id = f"{self.meta['config']}@{digest[:12]}"
        beside = refiner_path(self.path)  # the network's symphysis refiner, when it was trained with one
        self.refiner = Refiner(beside, threads) if beside.is_file() else None  # never spins: it runs right after
        if self.refiner is not None:  # refined and unrefined outputs of one network are told apart
            self.id += f"+refiner@{hashlib.sha256(beside.read_bytes()).hexdigest()[:12]}"

    def __call__(self, x: np.ndarray, tta_flip: bool) -> dict[str, np.ndarray]:
        """Activated outputs by name: dense heads (probabilities / sigmoid maps) and ``cls`` (sigmoid)."""
        out = self._activated(x)
        if not tta_flip:
            return out
        flipped = self._activated(np.ascontiguousarray(x[..., ::-1]))
        for name, kind in self.heads.items():
            f = flipped[name][..., ::-1]
            o = out[name]
            if kind == "segmentation" or self.anatomical:
                out[name] = 0.5 * (o + f)
            else:  # official-rule landmarks: mirrored PS1/PS2 are this scan's PS2/PS1; FH1 from the unflipped pass
                avg = o.copy()
                avg[:, 0] = 0.5 * (o[:, 0] + f[:, 1])
                avg[:, 1] = 0.5 * (o[:, 1] + f[:, 0])
                out[name] = avg
        return out

    def _activated(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raw = dict(zip(self.outputs, self.session.run(None, {"image": x}), strict=True))
        out = {name: activate(raw[name].astype(np.float32), kind) for name, kind in self.heads.items()}
        if "cls" in raw:
            out["cls"] = 1.0 / (1.0 + np.exp(-raw["cls"].astype(np.float64)))
        return out

    def cls_prob(self, out: dict[str, np.ndarray], name: str) -> np.ndarray | None:
        """The image-level probability ``name`` (``mirrored``, ``standard_plane``) per image, or None when the
        model has no such output."""
        if name not in self.cls_names:
            return None
        return out["cls"][:, self.cls_names.index(name)]

    def landmarks(self, maps: np.ndarray, size: tuple[int, int], kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Points ``(3, 2)`` in image pixels and confidences ``(3,)`` from one image's maps ``(3, h, w)``."""
        grid = maps.shape[-2:]
        if kind == "dsnt":  # expected coordinates; confidence = probability mass within 2 px of the peak
            xy, _ = decode_heatmaps(maps, method="soft_argmax", window=0)
            conf = peak_mass(maps)
        else:
            xy, conf = decode_heatmaps(maps, method=self.meta.get("decode", "dark"), sigma=self.meta.get("sigma", 2.0))
        return to_image_coords(xy, grid, size), np.asarray(conf, float)


def activate(logits: np.ndarray, kind: str) -> np.ndarray:
    if kind == "segmentation":
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if kind == "dsnt":
        flat = logits.reshape(*logits.shape[:2], -1)
        e = np.exp(flat - flat.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).reshape(logits.shape)
    return 1.0 / (1.0 + np.exp(-logits))
