"""Inference on ONNX Runtime (no torch): any image -> landmarks, PS/FH masks, AoP, HSD and a verdict.

>>> import partus
>>> m = partus.measure("scan.png")            # the bundled default model     # doctest: +SKIP
>>> m.aop, m.hsd, m.status, m.reason                                          # doctest: +SKIP

A :class:`Predictor` holds one model or an ensemble of exported models (``partus export``). Every image
is converted to 8-bit gray, resized to the model input, and the outputs are mapped back to the image's
own pixels: segmentation probabilities are upsampled to the image and turned into landmarks by the
official rule (:mod:`partus.geometry`); heatmaps are decoded with sub-pixel refinement
(:mod:`partus.decode`). An ensemble averages segmentation probabilities (paper 1, eq. 4); the landmark
estimates of its members and of a multitask network's heads are fused by :data:`~partus.decode.FUSION`
(the weighted median), weighted by :data:`~partus.decode.HEAD_WEIGHTS`. Each result carries a quality
verdict (:mod:`partus.quality`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .cleanup import clean_label_map
from .conventions import FH, LANDMARKS, PS, DisplayOrientation, HSDMethod, Orientation, parse_enum
from .decode import FUSION, HEAD_WEIGHTS, fuse_landmarks, upsample_labels
from .errors import InputError
from .geometry import aop_rows, largest_contour, measure_landmarks, measure_mask
from .io import ImageData, as_gray_uint8, read_any
from .measurement import Landmarks, Measurement
from .members import OnnxModel
from .preprocess import resize_image, to_input
from .quality import DEFAULT_LIMITS, QualityLimits, check_image, check_measurement
from .refine import SUFFIX as REFINER_SUFFIX

__all__ = ["DEFAULT_MODELS", "Prediction", "Predictor", "load_model", "measure", "model_files"]

#: The model shipped inside the package (see ``weights/MODEL_CARD.md``): one multitask network whose
#: segmentation (masks, HSD, structure checks), heatmap and DSNT heads are fused like an ensemble's members,
#: with an orientation head for mirrored displays.
WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODELS = (WEIGHTS / "multitask.onnx",)


@dataclass(frozen=True)
class Prediction:
    """One image's result: the measurement, the cleaned PS/FH label map (segmentation models; at the
    image's size, 0/1/2) and the 8-bit gray image it refers to."""

    measurement: Measurement
    label_map: np.ndarray | None
    image: np.ndarray


def _mirror_measurement(m: Measurement, width: int) -> Measurement:
    """``m`` measured on the mirrored-back scan, expressed in the displayed (mirrored) scan's pixels."""
    if m.landmarks is None:
        return m
    pts = m.landmarks.to_array()
    pts[:, 0] = (width - 1) - pts[:, 0]
    return replace(m, landmarks=Landmarks.from_array(pts))


def _named(conf: np.ndarray) -> dict[str, float]:
    return dict(zip(LANDMARKS, (round(float(c), 4) for c in conf), strict=True))


def model_files(path: str | os.PathLike) -> list:
    """A model file, or the ``.onnx`` files of a folder (e.g. one written by ``partus adapt``), sorted."""
    if os.path.isdir(path):
        found = sorted(str(p) for p in Path(path).glob("*.onnx") if not p.name.endswith(REFINER_SUFFIX))
        if not found:
            raise InputError(path, "the folder holds no .onnx model")
        return found
    return [path]


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError("batch_size", f"must be a positive integer, got {batch_size!r}")


class Predictor:
    """Landmarks, masks, AoP, HSD and a verdict from images, on ONNX Runtime.

    Parameters
    ----------
    models : path or sequence of paths, optional
        Exported partus models (``.onnx``) or folders of them; several make an ensemble. Default: the bundled model
        (:data:`DEFAULT_MODELS`).
    tta_flip : bool
        Also run each model on the mirrored image and average (exact for segmentation; for landmark
        heatmaps PS1/PS2 are swapped back and FH1 comes from the unflipped pass). Single-task models
        only: a multitask model decides the display orientation instead (``orientation="auto"``).
    threads : int
        ONNX Runtime intra-op threads (0: one per core).
    limits : QualityLimits
        Thresholds of the quality verdict.
    spinning : bool, optional
        Let ONNX Runtime's idle threads spin between runs. Default: only for a single network, where it cuts
        one image's latency (~3 ms with the bundled model; its refiner, if any, never spins); concurrent
        callers (the web service) and ensembles run faster without.
    """

    def __init__(
        self,
        models: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        *,
        tta_flip: bool = False,
        threads: int = 0,
        limits: QualityLimits = DEFAULT_LIMITS,
        spinning: bool | None = None,
    ):
        if models is None:
            missing = [p for p in DEFAULT_MODELS if not p.is_file()]
            if missing:
                raise InputError(missing[0], "the bundled model is missing; reinstall partus or pass a model")
            models = list(DEFAULT_MODELS)
        elif isinstance(models, str | os.PathLike):
            models = [models]
        models = [m for p in models for m in model_files(p)]
        if not models:
            raise InputError("models", "no model given")
        # a lone network spins; an ensemble's members would starve each other. Its refiner runs right after it
        # without spinning: faster than both spinning or neither (measured 2026-12-01, benchmarks/ACCURACY.md)
        spin = len(models) == 1 if spinning is None else bool(spinning)
        self.models = [OnnxModel(p, threads, spinning=spin) for p in models]
        sizes = {m.size for m in self.models}
        if len(sizes) > 1:  # one resize per image; ensembles share the input size
            raise InputError("models", f"ensemble members need one input size, got {sorted(sizes)}")
        if tta_flip and any(m.kind == "multitask" for m in self.models):
            raise InputError("tta_flip", "flip TTA is not defined for multitask models: they decide the display "
                             "orientation and measure the scan in the usual display")  # fmt: skip
        self.size = sizes.pop()
        self.tta_flip = tta_flip
        self.limits = limits
        self.id = "+".join(m.id for m in self.models)
        #: (model index, output name, kind) of every dense output: the members that are fused
        self.members = [(i, name, kind) for i, m in enumerate(self.models) for name, kind in m.heads.items()]
        #: each member's weight in the fused landmarks (:meth:`_weight`)
        self.weights = [self._weight(i, kind) for i, _, kind in self.members]
        self.has_orientation = any("mirrored" in m.cls_names for m in self.models)
        self.has_plane = any("standard_plane" in m.cls_names for m in self.models)

    @property
    def has_masks(self) -> bool:
        """Whether the predictor segments PS/FH (needed for HSD and mask output)."""
        return any(kind == "segmentation" for _, _, kind in self.members)

    def predict(
        self,
        images: Sequence[Any],
        *,
        pixel_spacing: Sequence[tuple[float, float] | None] | None = None,
        orientation: DisplayOrientation | str = DisplayOrientation.AUTO,
        hsd_method: HSDMethod | str = HSDMethod.NEAREST,
        batch_size: int = 16,
    ) -> list[Prediction]:
        """Predict a list of images (arrays; see :func:`partus.io.as_gray_uint8`), in batches.

        ``pixel_spacing`` gives each image's ``(sx, sy)`` in mm per pixel (or ``None``); HSD is then in mm.
        ``orientation`` (:class:`~partus.conventions.DisplayOrientation`): ``auto`` lets the model's
        orientation head decide per scan; a scan taken as mirrored is mirrored back, measured, and its
        landmarks mapped back with their anatomical identity. Bad *pixels* raise :class:`InputError`;
        images that cannot be measured come back ``not measurable`` with the reason.
        """
        orientation = parse_enum(DisplayOrientation, orientation, "orientation")
        hsd_method = parse_enum(HSDMethod, hsd_method, "hsd_method")
        _check_batch_size(batch_size)
        spacings = list(pixel_spacing) if pixel_spacing is not None else [None] * len(images)
        if len(spacings) != len(images):
            raise InputError("pixel_spacing", f"{len(spacings)} spacings for {len(images)} images")
        grays = [as_gray_uint8(im, f"image {i}") for i, im in enumerate(images)]
        results: list[Prediction | None] = [None] * len(grays)
        todo = []
        for i, g in enumerate(grays):
            reason = check_image(g, self.limits)
            if reason is None:
                todo.append(i)
            else:
                meta = {"hsd_unit": "px" if spacings[i] is None else "mm", "hsd_method": hsd_method}
                results[i] = Prediction(self._tag(Measurement.not_measurable(reason, **meta), None), None, g)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            x = to_input(np.stack([resize_image(grays[i], self.size) for i in chunk]))
            outs = [m(x, self.tta_flip) for m in self.models]
            p_mirror, flip, source = self._orientation(outs, len(chunk), orientation)
            p_plane = self._mean_prob(outs, "standard_plane")  # of the scan as displayed
            if flip.any():  # canonicalise: mirrored scans are measured in the usual display
                idx = np.flatnonzero(flip)
                again = [m(np.ascontiguousarray(x[idx][..., ::-1]), self.tta_flip) for m in self.models]
                for o, a in zip(outs, again, strict=True):
                    for name in o:
                        o[name] = o[name].copy()
                        o[name][idx] = a[name]
            for j, i in enumerate(chunk):
                info = {"display": "mirrored" if flip[j] else "standard", "decided_by": source,
                        "p_mirrored": None if p_mirror is None else round(float(p_mirror[j]), 4)}  # fmt: skip
                per_image = [{name: arr[j] for name, arr in o.items()} for o in outs]
                plane = None if p_plane is None else float(p_plane[j])
                results[i] = self._finish(grays[i], per_image, spacings[i], hsd_method, info, plane)
        return results  # type: ignore[return-value]

    def _mean_prob(self, outs: list[dict[str, np.ndarray]], name: str) -> np.ndarray | None:
        """An image-level probability averaged over the models that have it (None if none has)."""
        probs = [p for m, o in zip(self.models, outs, strict=True) if (p := m.cls_prob(o, name)) is not None]
        return np.mean(probs, axis=0) if probs else None

    def _orientation(
        self, outs: list[dict[str, np.ndarray]], n: int, orientation: DisplayOrientation
    ) -> tuple[np.ndarray | None, np.ndarray, str]:
        """P(mirrored) per image (None without an orientation head), the flip decision, and its source."""
        p_mirror = self._mean_prob(outs, "mirrored")
        if orientation != DisplayOrientation.AUTO:
            return p_mirror, np.full(n, orientation == DisplayOrientation.MIRRORED), "given"
        if p_mirror is None:
            return None, np.zeros(n, bool), "assumed standard (the model has no orientation head)"
        return p_mirror, p_mirror > self.limits.mirror_threshold, "orientation head"

    def _finish(
        self, gray: np.ndarray, outs: list[dict[str, np.ndarray]], spacing, hsd_method, info: dict, plane: float | None
    ) -> Prediction:
        mirrored = info["display"] == "mirrored"
        canon = np.ascontiguousarray(gray[:, ::-1]) if mirrored else gray
        size = canon.shape
        opts = {"orientation": Orientation.STANDARD, "hsd_method": hsd_method}
        seg = [outs[i][name] for i, name, kind in self.members if kind == "segmentation"]
        points, weights, confs, lab, contour, seg_result = [], [], [], None, None, None
        if seg:
            probs = np.mean(seg, axis=0)
            lab = clean_label_map(upsample_labels(probs.astype(np.float32), size))
            seg_result = measure_mask(lab, allow_border=True, pixel_spacing=spacing, **opts)
            grid_lab = probs.argmax(axis=0)
            conf_ps, conf_fh = (
                float(probs[c][grid_lab == c].mean()) if (grid_lab == c).any() else 0.0 for c in (PS, FH)
            )
            seg_ids = "+".join(self._label(i, name) for i, name, kind in self.members if kind == "segmentation")
            confs.append((seg_ids, "segmentation", np.array([conf_ps, conf_ps, conf_fh])))
            if (lab == FH).any():
                contour = largest_contour(lab == FH)
            if seg_result.landmarks is not None and seg_result.ok:  # once per segmentation member
                points += [seg_result.landmarks.to_array()] * len(seg)
                weights += [w for (_, _, k), w in zip(self.members, self.weights, strict=True) if k == "segmentation"]
        for (i, name, kind), w in zip(self.members, self.weights, strict=True):
            if kind != "segmentation":
                p, c = self.models[i].landmarks(outs[i][name], size, kind)
                points.append(p)
                weights.append(w)
                confs.append((self._label(i, name), kind, c))
        spread = None
        from_heads = False
        fused = fuse_landmarks(points, weights, FUSION) if points else None
        refiners = [m.refiner for m in self.models if m.refiner is not None]
        checks = [(kind, c) for _, kind, c in confs]
        refiner_conf = None
        if fused is not None and refiners:  # a second look at the symphysis (partus.refine), members averaged
            looks = [r.refine([canon], [fused]) for r in refiners]
            fused = np.mean([p[0] for p, _ in looks], axis=0)
            refiner_conf = np.fmin.reduce([c[0] for _, c in looks])  # the least sure refiner; NaN: not read
            if np.isfinite(refiner_conf).any():  # judged on the landmarks its window read
                checks.append(("refiner", np.where(np.isfinite(refiner_conf), refiner_conf, np.inf)))
        if seg_result is not None and (not seg_result.ok or len(self.members) == 1):
            result = seg_result  # a failed segmentation ends here: the ensemble does not half-average
            if not result.ok and fused is not None:  # but the landmark heads' points are reported, flagged
                heads = measure_landmarks(fused, pixel_spacing=spacing, **opts)
                result = replace(result, landmarks=heads.landmarks, aop=heads.aop, hsd=float("nan"))
                from_heads = True
        else:
            result = measure_landmarks(fused, fh_contour=contour, pixel_spacing=spacing, **opts)
            if len(points) > 1:  # a head whose points are degenerate gives no angle: total disagreement
                aops = aop_rows(np.stack(points))
                spread = math.inf if np.isnan(aops).any() else float(aops.max() - aops.min())
        result = check_measurement(
            result, size, checks, self.limits,
            aop_spread=spread, gray=canon, label_map=lab, standard_plane=plane,
        )  # fmt: skip
        if mirrored:  # back to the scan as displayed; landmarks keep their anatomical identity
            result = _mirror_measurement(result, gray.shape[1])
            lab = None if lab is None else np.ascontiguousarray(lab[:, ::-1])
        result = replace(result, orientation=Orientation.MIRRORED if mirrored else Orientation.STANDARD)
        extras: dict[str, Any] = {"confidence": _named(confs[0][2]), "orientation": info}
        if from_heads:  # the segmentation failed: its reason stands, the points are the other heads'
            extras["landmarks_from"] = "landmark heads"
        if plane is not None:
            extras["standard_plane"] = round(plane, 4)
        if refiner_conf is not None and np.isfinite(refiner_conf).any():
            named = zip(LANDMARKS, refiner_conf, strict=True)
            extras["refiner_confidence"] = {n: round(float(c), 4) for n, c in named if np.isfinite(c)}
        if len(self.members) > 1:
            extras["member_confidence"] = {label: _named(c) for label, _, c in confs}
            extras["aop_spread_deg"] = round(spread, 3) if spread is not None and math.isfinite(spread) else None
        return Prediction(self._tag(result, extras), lab, gray)

    def _weight(self, i: int, kind: str) -> float:
        """A member's weight in the fused landmarks: separate networks weigh the same (paper 1, eq. 4), and
        within a multitask network its heads share that weight as :data:`~partus.decode.HEAD_WEIGHTS` says."""
        model = self.models[i]
        if model.kind != "multitask":
            return 1.0
        return HEAD_WEIGHTS[kind] / sum(HEAD_WEIGHTS[k] for k in model.heads.values())

    def _label(self, i: int, name: str) -> str:
        m = self.models[i]
        return m.id if name == "output" else f"{m.id}:{name}"

    def _tag(self, m: Measurement, extras: dict | None) -> Measurement:
        return replace(m, extras={**m.extras, "confidence": None, **(extras or {}), "model": self.id})

    def measure(self, image: Any, *, pixel_spacing: tuple[float, float] | None = None, **kw: Any) -> Measurement:
        """Measure one image: an array, an :class:`~partus.io.ImageData`, or a file path (any format
        :func:`partus.io.read_any` reads; the file's pixel spacing is used unless one is given)."""
        return self.predict_one(image, pixel_spacing=pixel_spacing, **kw).measurement

    def predict_one(self, image: Any, *, pixel_spacing: tuple[float, float] | None = None, **kw: Any) -> Prediction:
        """Like :meth:`measure`, returning the full :class:`Prediction` (mask and gray image too)."""
        if isinstance(image, str | os.PathLike):
            image = read_any(image)
        if isinstance(image, ImageData):
            if image.frames > 1:
                raise InputError(image.source, f"has {image.frames} frames; use Predictor.predict_frames for a clip")
            pixel_spacing = pixel_spacing if pixel_spacing is not None else image.pixel_spacing
            image = image.pixels
        return self.predict([image], pixel_spacing=[pixel_spacing], **kw)[0]

    def predict_frames(
        self,
        frames: Iterable[tuple[int, np.ndarray]],
        *,
        pixel_spacing: tuple[float, float] | None = None,
        batch_size: int = 16,
        **kw: Any,
    ) -> Iterator[tuple[int, Prediction]]:
        """Predict a stream of ``(index, frame)`` pairs (a video or multi-frame DICOM) in batches; all
        frames share ``pixel_spacing``."""
        _check_batch_size(batch_size)
        buf: list[tuple[int, np.ndarray]] = []
        for item in frames:
            buf.append(item)
            if len(buf) == batch_size:
                yield from self._frame_batch(buf, pixel_spacing, kw)
                buf = []
        if buf:
            yield from self._frame_batch(buf, pixel_spacing, kw)

    def _frame_batch(self, buf: list, spacing: Any, kw: dict) -> Iterator[tuple[int, Prediction]]:
        preds = self.predict([f for _, f in buf], pixel_spacing=[spacing] * len(buf), **kw)
        return zip([i for i, _ in buf], preds, strict=True)


_DEFAULT: Predictor | None = None


def load_model(models: Any = None, **kw: Any) -> Predictor:
    """A :class:`Predictor` (the bundled model when ``models`` is None; cached when called without options)."""
    global _DEFAULT
    if models is None and not kw:
        if _DEFAULT is None:
            _DEFAULT = Predictor()
        return _DEFAULT
    return Predictor(models, **kw)


def measure(image: Any, *, model: Predictor | None = None, **kw: Any) -> Measurement:
    """Measure AoP and HSD on one image with the bundled model (or ``model``).

    Parameters
    ----------
    image : path, ndarray or ImageData
        PNG/JPEG/BMP/TIFF, ``.mha``/NIfTI, DICOM, or pixels ``(H, W)`` / ``(H, W, 3)`` RGB.
    pixel_spacing : (sx, sy), optional
        mm per pixel; overrides the file's. HSD is in mm when a spacing is known.
    orientation : {"standard", "mirrored"}
    hsd_method : {"nearest", "infrapubic"}

    Returns
    -------
    Measurement
        ``status == "ok"`` or ``"not measurable"`` with ``reason``; ``extras`` holds the per-landmark
        ``confidence`` and the ``model`` id.
    """
    return (model or load_model()).measure(image, **kw)
