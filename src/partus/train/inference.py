"""Torch-side prediction for validation and cross-validation: model outputs -> landmarks in ORIGINAL
pixels, with optional horizontal-flip test-time augmentation; a multitask network's heads are fused by
``partus.decode.FUSION``. The shipped inference path (ONNX Runtime) mirrors this without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..decode import FUSION, HEAD_WEIGHTS, decode_heatmaps, fuse_landmarks, to_image_coords, upsample_labels
from ..geometry import measure_mask
from ..models.dsnt import dsnt, spatial_softmax
from ..models.multitask import DENSE_HEADS
from ..preprocess import resize_image, to_input

__all__ = ["activate_multitask", "outputs_to_landmarks", "predict", "predict_oriented", "upsample_labels"]


def _flip_back(out: torch.Tensor, kind: str, anatomical: bool) -> torch.Tensor:
    """Model output on a mirrored input, mirrored back into the original frame.

    Segmentation: exact. Landmark maps: with anatomical landmarks every channel is the same landmark;
    with the official rule the mirrored scan's PS1/PS2 are the original's PS2/PS1 (swap), and its FH1
    is a different tangent point, so FH1 is not averaged (NaN marks "use the unflipped pass").
    """
    out = torch.flip(out, dims=[-1])
    if kind == "segmentation" or anatomical:
        return out
    swapped = out[:, [1, 0, 2]].clone()
    swapped[:, 2] = float("nan")
    return swapped


def _activate(logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "segmentation":
        return torch.softmax(logits, dim=1)
    return spatial_softmax(logits) if kind == "dsnt" else torch.sigmoid(logits)


def activate_multitask(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Probabilities of every head of a multitask model (``cls``: sigmoid per logit)."""
    res = {name: _activate(out[name], kind) for name, kind in DENSE_HEADS.items()}
    res["cls"] = torch.sigmoid(out["cls"])
    return res


@torch.inference_mode()
def forward_tta(model: torch.nn.Module, x: torch.Tensor, *, tta_flip: bool, anatomical: bool) -> torch.Tensor:
    """Model output (probabilities for segmentation / dsnt, sigmoid heatmaps otherwise), flip-averaged."""
    kind = model.kind
    if kind == "multitask":
        if tta_flip:
            raise ValueError("flip TTA is not defined for multitask models (they canonicalise orientation)")
        return activate_multitask(model(x))

    def act(logits: torch.Tensor) -> torch.Tensor:
        return _activate(logits, kind)

    out = act(model(x))
    if not tta_flip:
        return out
    flipped = _flip_back(act(model(torch.flip(x, dims=[-1]))), kind, anatomical)
    return torch.where(torch.isnan(flipped), out, 0.5 * (out + flipped))


def outputs_to_landmarks(
    out: torch.Tensor, kind: str, orig_sizes: Sequence[tuple[int, int]], *, method: str = "dark", sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """Landmarks ``(N, 3, 2)`` in original pixels, confidences ``(N, 3)``, and (segmentation) masks.

    A segmentation whose landmarks cannot be measured gives NaN points and confidence 0.
    """
    if kind == "multitask":  # the three heads as an ensemble: their landmarks fused as partus.predict does (FUSION)
        parts = [outputs_to_landmarks(out[name], k, orig_sizes, method=method, sigma=sigma)
                 for name, k in DENSE_HEADS.items()]  # fmt: skip
        fused = fuse_landmarks([p for p, _, _ in parts], [HEAD_WEIGHTS[k] for k in DENSE_HEADS.values()], FUSION)
        return fused, parts[1][1], parts[0][2]
    n = out.shape[0]
    grid = tuple(out.shape[-2:])
    pts, conf, masks = np.full((n, 3, 2), np.nan), np.zeros((n, 3)), [None] * n
    if kind == "segmentation":
        probs = out.float().cpu().numpy()
        for i, (h, w) in enumerate(orig_sizes):
            lab = upsample_labels(probs[i], (int(h), int(w)))
            m = measure_mask(lab, clean=True, allow_border=True)
            masks[i] = lab
            if m.landmarks is not None and m.ok:
                pts[i] = m.landmarks.to_array()
                conf[i] = [probs[i, c].max() for c in (1, 1, 2)]
        return pts, conf, masks
    if kind == "dsnt":
        xy = dsnt(out).float().cpu().numpy()
        conf = out.flatten(2).amax(-1).float().cpu().numpy()
    else:
        xy, conf = decode_heatmaps(out.float().cpu().numpy(), method=method, sigma=sigma)
    for i, size in enumerate(orig_sizes):
        pts[i] = to_image_coords(xy[i], grid, tuple(int(v) for v in size))
    return pts, conf, masks


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    *,
    input_size: int,
    batch_size: int = 16,
    method: str = "dark",
    sigma: float = 2.0,
    tta_flip: bool = False,
    anatomical: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """Predict landmarks for uint8 grayscale images of any size (see :func:`outputs_to_landmarks`)."""
    pts, conf, masks, _ = _predict(model, images, input_size=input_size, batch_size=batch_size, method=method,
                                   sigma=sigma, tta_flip=tta_flip, anatomical=anatomical)  # fmt: skip
    return pts, conf, masks


def _predict(model, images, *, input_size, batch_size=16, method="dark", sigma=2.0, tta_flip=False, anatomical=False):
    """:func:`predict`, plus the image-level ``cls`` probabilities ``(N, C)`` of a multitask model (C = 0 else)."""
    model.eval()
    n_cls = len(getattr(model, "cls_names", ())) if model.kind == "multitask" else 0
    all_pts, all_conf, all_masks, all_cls = [], [], [], []
    if len(images) == 0:
        return np.zeros((0, 3, 2)), np.zeros((0, 3)), [], np.zeros((0, n_cls))
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        t = torch.from_numpy(to_input(np.stack([resize_image(im, input_size) for im in chunk])))
        out = forward_tta(model, t, tta_flip=tta_flip, anatomical=anatomical)
        p, c, m = outputs_to_landmarks(out, model.kind, [im.shape for im in chunk], method=method, sigma=sigma)
        all_pts.append(p)
        all_conf.append(c)
        all_masks += m
        all_cls.append(out["cls"].float().cpu().numpy() if n_cls else np.zeros((len(chunk), 0)))
    return np.concatenate(all_pts), np.concatenate(all_conf), all_masks, np.concatenate(all_cls)


def _mirror_points(pts: np.ndarray, widths: Sequence[int]) -> np.ndarray:
    out = np.array(pts, float)
    out[..., 0] = (np.asarray(widths, float)[:, None] - 1) - out[..., 0]
    return out


@torch.inference_mode()
def predict_oriented(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    *,
    orientation: str = "auto",
    refiner: Callable[[list, list], list] | None = None,
    **kw,
) -> tuple[np.ndarray, np.ndarray]:
    """Anatomical landmarks ``(N, 3, 2)`` on scans of either display orientation, and P(mirrored) ``(N,)``.

    ``standard``: the scans are measured as given. ``mirrored``: each scan is mirrored back, measured,
    and its points mirrored again (identities kept). ``auto`` (multitask models): the orientation head
    decides per scan (P(mirrored) > 0.5). ``refiner`` (a :class:`partus.refine.Refiner`) refines the points
    in the usual display, as the shipped path does. Other keywords as :func:`predict`.
    """
    images = list(images)
    n = len(images)
    pts = None
    if orientation == "auto":
        if model.kind != "multitask" or "mirrored" not in model.cls_names:
            raise ValueError("orientation 'auto' needs a multitask model with a 'mirrored' orientation head")
        pts, _, _, cls = _predict(model, images, **kw)  # one pass as displayed gives P(mirrored) too
        p_mirror = cls[:, model.cls_names.index("mirrored")].astype(float)
        flip = p_mirror > 0.5
    elif orientation in ("standard", "mirrored"):
        flip = np.full(n, orientation == "mirrored")
        p_mirror = flip.astype(float)
        if orientation == "standard":
            pts = predict(model, images, **kw)[0]
    else:
        raise ValueError(f"orientation must be 'auto', 'standard' or 'mirrored', got {orientation!r}")
    if pts is None:
        pts = np.full((n, 3, 2), np.nan)
    keep = np.flatnonzero(~flip)
    if refiner is not None and keep.size:
        pts[keep] = refiner([images[i] for i in keep], list(pts[keep]))
    idx = np.flatnonzero(flip)
    if idx.size:  # mirrored displays: measured mirrored back, points mapped back (identities kept)
        back = [np.ascontiguousarray(images[i][:, ::-1]) for i in idx]
        again = predict(model, back, **kw)[0]
        if refiner is not None:
            again = np.stack(refiner(back, list(again)))
        pts[idx] = _mirror_points(again, [images[i].shape[1] for i in idx])
    return pts, p_mirror
