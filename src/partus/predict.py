"""Inference on ONNX Runtime (no torch): any image -> landmarks, PS/FH masks, AoP, HSD and a verdict.

>>> import partus
>>> m = partus.measure("scan.png")            # the bundled default model     # doctest: +SKIP
>>> m.aop, m.hsd, m.status, m.reason                                          # doctest: +SKIP

A :class:`Predictor` holds one model or an ensemble of exported models (``partus export``). Every image
is converted to 8-bit gray, resized to the model input, and the outputs are mapped back to the image's
own pixels: segmentation probabilities are upsampled to the image and turned into landmarks by the
official rule (:mod:`partus.geometry`); heatmaps are decoded with sub-pixel refinement
(:mod:`partus.decode`). An ensemble averages segmentation probabilities and landmark coordinates
(paper 1, eq. 4). Each result carries a quality verdict (:mod:`partus.quality`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .cleanup import clean_label_map
from .conventions import FH, PS, HSDMethod, Orientation, parse_enum
from .decode import decode_heatmaps, to_image_coords, upsample_labels
from .errors import InputError
from .export import open_model
from .geometry import angle_of_progression, largest_contour, measure_landmarks, measure_mask
from .io import ImageData, as_gray_uint8, read_any
from .measurement import Measurement
from .preprocess import resize_image, to_input
from .quality import DEFAULT_LIMITS, QualityLimits, check_image, check_measurement

__all__ = ["DEFAULT_MODELS", "Prediction", "Predictor", "load_model", "measure"]

#: The ensemble shipped inside the package (see ``weights/MODEL_CARD.md``): segmentation U-Net (masks,
#: HSD, structure checks), heatmap U-Net and DSNT U-Net, their landmarks averaged.
WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODELS = (WEIGHTS / "seg_unet.onnx", WEIGHTS / "heatmap_unet.onnx", WEIGHTS / "dsnt.onnx")


@dataclass(frozen=True)
class Prediction:
    """One image's result: the measurement, the cleaned PS/FH label map (segmentation models; at the
    image's size, 0/1/2) and the 8-bit gray image it refers to."""

    measurement: Measurement
    label_map: np.ndarray | None
    image: np.ndarray


class _Model:
    """One exported model: an ONNX Runtime session plus what its metadata says about it."""

    def __init__(self, path: str | os.PathLike, threads: int):
        self.path = Path(path)
        self.session, self.meta = open_model(self.path, threads=threads)
        self.kind: str = self.meta["kind"]
        self.size: int = int(self.meta["input_size"])
        self.anatomical = self.meta.get("flip_policy") == "anatomical"
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.id = f"{self.meta['config']}@{digest[:12]}"

    def __call__(self, x: np.ndarray, tta_flip: bool) -> np.ndarray:
        out = self._activated(x)
        if not tta_flip:
            return out
        flipped = self._activated(np.ascontiguousarray(x[..., ::-1]))[..., ::-1]
        if self.kind == "segmentation" or self.anatomical:
            return 0.5 * (out + flipped)
        # Official-rule landmarks: the mirrored scan's PS1/PS2 are this scan's PS2/PS1, and its FH1 is a
        # different tangent point, so FH1 comes from the unflipped pass alone.
        avg = out.copy()
        avg[:, 0] = 0.5 * (out[:, 0] + flipped[:, 1])
        avg[:, 1] = 0.5 * (out[:, 1] + flipped[:, 0])
        return avg

    def _activated(self, x: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {"image": x})[0].astype(np.float64)
        if self.kind == "segmentation":
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if self.kind == "dsnt":
            flat = logits.reshape(*logits.shape[:2], -1)
            e = np.exp(flat - flat.max(axis=-1, keepdims=True))
            return (e / e.sum(axis=-1, keepdims=True)).reshape(logits.shape)
        return 1.0 / (1.0 + np.exp(-logits))

    def landmarks(self, maps: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Points ``(3, 2)`` in image pixels and confidences ``(3,)`` from one image's maps ``(3, h, w)``."""
        grid = maps.shape[-2:]
        if self.kind == "dsnt":  # expected coordinates; confidence = probability mass within 2 px of the peak
            xy, _ = decode_heatmaps(maps, method="soft_argmax", window=0)
            conf = np.empty(3)
            for k, m in enumerate(maps):
                y, x = np.unravel_index(int(np.argmax(m)), m.shape)
                conf[k] = m[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].sum()
        else:
            xy, conf = decode_heatmaps(maps, method=self.meta.get("decode", "dark"), sigma=self.meta.get("sigma", 2.0))
        return to_image_coords(xy, grid, size), np.asarray(conf, float)


def _named(conf: np.ndarray) -> dict[str, float]:
    return dict(zip(("PS1", "PS2", "FH1"), (round(float(c), 4) for c in conf), strict=True))


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError("batch_size", f"must be a positive integer, got {batch_size!r}")


class Predictor:
    """Landmarks, masks, AoP, HSD and a verdict from images, on ONNX Runtime.

    Parameters
    ----------
    models : path or sequence of paths, optional
        Exported partus models (``.onnx``); several make an ensemble. Default: the bundled ensemble
        (:data:`DEFAULT_MODELS`).
    tta_flip : bool
        Also run each model on the mirrored image and average (exact for segmentation; for landmark
        heatmaps PS1/PS2 are swapped back and FH1 comes from the unflipped pass).
    threads : int
        ONNX Runtime intra-op threads (0: one per core).
    limits : QualityLimits
        Thresholds of the quality verdict.
    """

    def __init__(
        self,
        models: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        *,
        tta_flip: bool = False,
        threads: int = 0,
        limits: QualityLimits = DEFAULT_LIMITS,
    ):
        if models is None:
            missing = [p for p in DEFAULT_MODELS if not p.is_file()]
            if missing:
                raise InputError(missing[0], "the bundled model is missing; reinstall partus or pass a model")
            models = list(DEFAULT_MODELS)
        elif isinstance(models, str | os.PathLike):
            models = [models]
        if not models:
            raise InputError("models", "no model given")
        self.models = [_Model(p, threads) for p in models]
        sizes = {m.size for m in self.models}
        if len(sizes) > 1:  # one resize per image; ensembles share the input size
            raise InputError("models", f"ensemble members need one input size, got {sorted(sizes)}")
        self.size = sizes.pop()
        self.tta_flip = tta_flip
        self.limits = limits
        self.id = "+".join(m.id for m in self.models)

    @property
    def has_masks(self) -> bool:
        """Whether the predictor segments PS/FH (needed for HSD and mask output)."""
        return any(m.kind == "segmentation" for m in self.models)

    def predict(
        self,
        images: Sequence[Any],
        *,
        pixel_spacing: Sequence[tuple[float, float] | None] | None = None,
        orientation: Orientation | str = Orientation.STANDARD,
        hsd_method: HSDMethod | str = HSDMethod.NEAREST,
        batch_size: int = 16,
    ) -> list[Prediction]:
        """Predict a list of images (arrays; see :func:`partus.io.as_gray_uint8`), in batches.

        ``pixel_spacing`` gives each image's ``(sx, sy)`` in mm per pixel (or ``None``); HSD is then in mm.
        Bad *pixels* raise :class:`InputError`; images that cannot be measured come back
        ``not measurable`` with the reason.
        """
        orientation = parse_enum(Orientation, orientation, "orientation")
        hsd_method = parse_enum(HSDMethod, hsd_method, "hsd_method")
        _check_batch_size(batch_size)
        spacings = list(pixel_spacing) if pixel_spacing is not None else [None] * len(images)
        if len(spacings) != len(images):
            raise InputError("pixel_spacing", f"{len(spacings)} spacings for {len(images)} images")
        grays = [as_gray_uint8(im, f"image {i}") for i, im in enumerate(images)]
        opts = {"orientation": orientation, "hsd_method": hsd_method}
        results: list[Prediction | None] = [None] * len(grays)
        todo = []
        for i, g in enumerate(grays):
            reason = check_image(g, self.limits)
            if reason is None:
                todo.append(i)
            else:
                meta = {"hsd_unit": "px" if spacings[i] is None else "mm", **opts}
                results[i] = Prediction(self._tag(Measurement.not_measurable(reason, **meta), None), None, g)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            x = to_input(np.stack([resize_image(grays[i], self.size) for i in chunk]))
            outs = [m(x, self.tta_flip) for m in self.models]
            for j, i in enumerate(chunk):
                results[i] = self._finish(grays[i], [o[j] for o in outs], spacings[i], opts)
        return results  # type: ignore[return-value]

    def _finish(self, gray: np.ndarray, outs: list[np.ndarray], spacing, opts: dict) -> Prediction:
        size = gray.shape
        seg = [o for m, o in zip(self.models, outs, strict=True) if m.kind == "segmentation"]
        points, confs, lab, contour, seg_result = [], [], None, None, None
        if seg:
            probs = np.mean(seg, axis=0)
            lab = clean_label_map(upsample_labels(probs.astype(np.float32), size))
            seg_result = measure_mask(lab, allow_border=True, pixel_spacing=spacing, **opts)
            grid_lab = probs.argmax(axis=0)
            conf_ps, conf_fh = (
                float(probs[c][grid_lab == c].mean()) if (grid_lab == c).any() else 0.0 for c in (PS, FH)
            )
            seg_ids = "+".join(m.id for m in self.models if m.kind == "segmentation")
            confs.append((seg_ids, "segmentation", np.array([conf_ps, conf_ps, conf_fh])))
            if (lab == FH).any():
                contour = largest_contour(lab == FH)
            if seg_result.landmarks is not None and seg_result.ok:
                points.append(seg_result.landmarks.to_array())
        for m, o in zip(self.models, outs, strict=True):
            if m.kind != "segmentation":
                p, c = m.landmarks(o, size)
                points.append(p)
                confs.append((m.id, m.kind, c))
        spread = None
        if seg_result is not None and (not seg_result.ok or len(self.models) == 1):
            result = seg_result  # a failed segmentation ends here: the ensemble does not half-average
        else:
            result = measure_landmarks(np.mean(points, axis=0), fh_contour=contour, pixel_spacing=spacing, **opts)
            if len(points) > 1:
                aops = [angle_of_progression(*p) for p in points]
                spread = float(max(aops) - min(aops))
        result = check_measurement(
            result, size, [(kind, c) for _, kind, c in confs], self.limits,
            aop_spread=spread, gray=gray, label_map=lab,
        )  # fmt: skip
        extras: dict[str, Any] = {"confidence": _named(confs[0][2])}
        if len(self.models) > 1:
            extras["member_confidence"] = {label: _named(c) for label, _, c in confs}
            extras["aop_spread_deg"] = None if spread is None else round(spread, 3)
        return Prediction(self._tag(result, extras), lab, gray)

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
