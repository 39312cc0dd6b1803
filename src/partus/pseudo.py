"""Pseudo-labels: a model labels unlabelled scans, and each label is kept or rejected with its reason.

A scan's label is kept only when every check passes (papers 1 and 2 filter by confidence and anatomy):

1. the model's own verdict is ``ok`` (image checks, head confidences, standard plane, plausibility);
2. **agreement**: the AoPs of the model's heads (or ensemble members) differ by at most ``max_aop_spread``;
3. **consistency**: measured again on a mirrored, slightly zoomed and shifted copy (flip and geometric
   consistency in one pass), the landmarks, mapped back, land within ``max_shift_px`` (a share of the
   image's shorter side) of the first measurement. A model that decides the display's orientation must
   recognise the mirrored copy and find the same anatomy; a mirror alone would test nothing more for it,
   since it measures a mirrored scan by flipping it back to the same pixels.
4. **anatomy** (paper 1's mask checks): AoP within ``aop_range``; each structure one solid region
   (solidity of PS >= ``min_ps_solidity``, of FH >= ``min_fh_solidity``); areas within the ranges seen in
   the annotated scans; the head's centre below the symphysis'.

The defaults are the 0.5-1st percentiles of the 658 annotated psfhs-dev scans, loosened a little (PS
solidity 0.93-0.99, FH 0.98-0.99, FH centre 51-130 px below PS on 256-px scans).

Kept labels are written in the psfhs-dev layout (``images/``, ``labels/``, ``landmarks.csv``,
``manifest.csv``), so ``partus train --set data.root=DIR`` or ``semi.pseudo_root`` reads them; scans the model
took as mirrored are stored in the usual display. ``pseudo_labels.csv`` lists every scan with its
decision, reason and scores.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .conventions import FH, PS
from .data.unlabelled import Scan
from .errors import InputError
from .geometry import angle_of_progression
from .measurement import Measurement
from .predict import Predictor

__all__ = ["PseudoFilter", "PseudoLabel", "pseudo_label", "write_pseudo_labels"]


@dataclass(frozen=True)
class PseudoFilter:
    """Thresholds of the keep/reject decision (see the module docstring)."""

    max_aop_spread: float = 6.0
    max_shift_px: float = 0.03
    zoom: float = 0.92
    aop_range: tuple[float, float] = (60.0, 175.0)
    min_ps_solidity: float = 0.85
    min_fh_solidity: float = 0.95
    ps_area: tuple[float, float] = (0.005, 0.07)
    fh_area: tuple[float, float] = (0.04, 0.40)
    min_fh_below: float = 0.1  # FH centre below the PS centre, share of the image height


@dataclass
class PseudoLabel:
    """One scan's pseudo-label (in the usual display) and the decision; ``score`` ranks kept labels
    (lower is surer: head disagreement and inconsistency, each relative to its limit)."""

    name: str
    group: str
    keep: bool
    reason: str
    image: np.ndarray
    check: str = ""  # the check that rejected it: verdict, agreement, consistency or anatomy
    points: np.ndarray | None = None
    label_map: np.ndarray | None = None
    mirrored: bool = False
    aop: float = float("nan")
    spread: float = float("nan")
    shift_px: float = float("nan")
    score: float = float("inf")
    measurement: Measurement | None = None  # the scan measured as given (the model's verdict included)


def _solidity(binary: np.ndarray) -> tuple[float, int]:
    contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0.0, 0
    big = max(contours, key=cv2.contourArea)
    hull = cv2.contourArea(cv2.convexHull(big))
    return (cv2.contourArea(big) / hull if hull > 0 else 0.0), len(contours)


def anatomy_reason(points: np.ndarray, label_map: np.ndarray | None, f: PseudoFilter) -> str | None:
    """Why a measurement is anatomically implausible for a pseudo-label (None: plausible)."""
    aop = float(angle_of_progression(*np.asarray(points, float)))
    if not f.aop_range[0] <= aop <= f.aop_range[1]:
        return f"AoP {aop:.1f} deg outside {f.aop_range[0]:g}-{f.aop_range[1]:g}"
    if label_map is None:
        return None
    h = label_map.shape[0]
    centres = {}
    for cls, name, lo_sol, (lo, hi) in ((PS, "PS", f.min_ps_solidity, f.ps_area),
                                        (FH, "FH", f.min_fh_solidity, f.fh_area)):  # fmt: skip
        region = label_map == cls
        area = float(region.mean())
        if not lo <= area <= hi:
            return f"{name} area {100 * area:.1f} % of the image outside {100 * lo:g}-{100 * hi:g} %"
        sol, parts = _solidity(region)
        if parts > 1:
            return f"{name} mask in {parts} pieces"
        if sol < lo_sol:
            return f"{name} mask not solid (solidity {sol:.2f} < {lo_sol:g})"
        centres[name] = np.argwhere(region).mean(axis=0)
    below = (centres["FH"][0] - centres["PS"][0]) / h
    if below < f.min_fh_below:
        return f"head centre not below the symphysis ({100 * below:.0f} % of the height)"
    return None


def _check_copy(gray: np.ndarray, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """``gray`` zoomed out about a point off-centre, then mirrored, and the 2x3 map of the whole change
    (pixel centres: a mirror is x -> w - 1 - x)."""
    h, w = gray.shape
    m = cv2.getRotationMatrix2D((0.45 * w, 0.55 * h), 0.0, zoom)
    m = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0.0, 0.0, 1.0]])
    return cv2.warpAffine(gray, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0), m


def _unmap(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    inv = cv2.invertAffineTransform(m)
    return points @ inv[:, :2].T + inv[:, 2]


def pseudo_label(
    predictor: Predictor,
    scans: Sequence[Scan],
    *,
    rules: PseudoFilter | None = None,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> list[PseudoLabel]:
    """Label ``scans`` with ``predictor`` and decide which labels to keep (see the module docstring).

    ``on_batch(n)`` is called after every ``n`` scans (a progress bar).
    """
    f = rules or PseudoFilter()
    if not predictor.has_masks:
        raise InputError("model", "pseudo-labels need a model that segments PS and FH (the masks are part of "
                         "the label and of its anatomy checks)")  # fmt: skip
    out: list[PseudoLabel] = []
    for start in range(0, len(scans), batch_size):
        chunk = scans[start : start + batch_size]
        first = predictor.predict([s.image for s in chunk], batch_size=batch_size)
        warped = [_check_copy(p.image, f.zoom) for p in first]
        again = predictor.predict([w for w, _ in warped], batch_size=batch_size)
        for scan, p, (_, m), q in zip(chunk, first, warped, again, strict=True):
            out.append(_decide(scan, p, q, m, f))
        if on_batch is not None:
            on_batch(len(chunk))
    return out


def _decide(scan: Scan, p, q, m: np.ndarray, f: PseudoFilter) -> PseudoLabel:
    meas = p.measurement
    label = PseudoLabel(scan.name, scan.group, False, "", p.image, measurement=meas)
    if not meas.ok:
        label.reason, label.check = f"model verdict: {meas.reason}", "verdict"
        return label
    pts = meas.landmarks.to_array()
    label.aop = float(meas.aop)
    spread = meas.extras.get("aop_spread_deg")  # None for a single-head model: no agreement check
    label.spread = float("nan") if spread is None else float(spread)
    copy = q.measurement  # its points count only when its segmentation worked (the masks are part of the label)
    if copy.landmarks is not None and "landmarks_from" not in copy.extras:
        back = _unmap(copy.landmarks.to_array(), m)
        label.shift_px = float(np.linalg.norm(back - pts, axis=1).max())
    limit_px = f.max_shift_px * min(p.image.shape)
    label.score = np.nan_to_num(label.spread / f.max_aop_spread) + (
        label.shift_px / limit_px if np.isfinite(label.shift_px) else 9
    )
    mirrored = meas.extras.get("orientation", {}).get("display") == "mirrored"
    lab = p.label_map
    if mirrored:  # stored in the usual display: the anatomy keeps its identity, x is mirrored
        w = p.image.shape[1]
        pts = np.column_stack([w - 1 - pts[:, 0], pts[:, 1]])
        lab = None if lab is None else np.ascontiguousarray(lab[:, ::-1])
        label.image = np.ascontiguousarray(p.image[:, ::-1])
    label.points, label.label_map, label.mirrored = pts, lab, mirrored
    if label.spread > f.max_aop_spread:
        label.check, label.reason = (
            "agreement",
            f"heads disagree: AoP spread {label.spread:.1f} deg > {f.max_aop_spread:g}",
        )
    elif not np.isfinite(label.shift_px):
        label.check, label.reason = "consistency", "not measurable on a mirrored, zoomed copy"
    elif label.shift_px > limit_px:
        label.check = "consistency"
        label.reason = (
            f"inconsistent on a mirrored, zoomed copy: a landmark moved {label.shift_px:.1f} px > {limit_px:.1f}"
        )
    elif (why := anatomy_reason(pts, lab, f)) is not None:
        label.check, label.reason = "anatomy", why
    else:
        label.keep, label.reason = True, "kept"
    return label


def write_pseudo_labels(out_dir: str | os.PathLike, labels: Sequence[PseudoLabel]) -> dict:
    """Write the kept labels in the psfhs-dev layout and every decision to ``pseudo_labels.csv``;
    returns counts (``scans``, ``kept``, ``rejected`` by the check that rejected them)."""
    from .io import atomic_write, write_mask, write_png, write_predictions_csv

    out = Path(out_dir)
    ids = _ids([lab.name for lab in labels])
    kept = [(i, lab) for i, lab in zip(ids, labels, strict=True) if lab.keep]
    keep_ids = {i for i, _ in kept}
    for sub in ("images", "labels"):  # a folder written before: its other labels must not linger
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).glob("*.png"):
            if old.stem not in keep_ids:
                old.unlink()
    for i, lab in kept:
        write_png(out / "images" / f"{i}.png", lab.image)
        write_mask(out / "labels" / f"{i}.png", lab.label_map)
    write_predictions_csv(out / "landmarks.csv", [(f"{i}.png", lab.points) for i, lab in kept])
    manifest = [[i, f"images/{i}.png", f"labels/{i}.png", lab.group] for i, lab in kept]
    atomic_write(out / "manifest.csv", _csv(["id", "image", "label", "near_dup_cluster"], manifest))
    decisions = [[i, lab.name, int(lab.keep), lab.check, lab.reason, "mirrored" if lab.mirrored else "standard",
                  _num(lab.aop), _num(lab.spread), _num(lab.shift_px), _num(lab.score)]
                 for i, lab in zip(ids, labels, strict=True)]  # fmt: skip
    head = ["id", "source", "keep", "check", "reason", "display", "aop", "aop_spread", "shift_px", "score"]
    atomic_write(out / "pseudo_labels.csv", _csv(head, decisions))
    reasons: dict[str, int] = {}
    for lab in labels:
        if not lab.keep:
            reasons[lab.check] = reasons.get(lab.check, 0) + 1
    return {"scans": len(labels), "kept": len(kept), "rejected": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}


def _ids(names: Sequence[str]) -> list[str]:
    """File-safe, unique ids in input order (``00000_scan``)."""
    safe = ["".join(c if c.isalnum() or c in "-_" else "_" for c in Path(n).name)[:60] for n in names]
    return [f"{k:05d}_{s}" for k, s in enumerate(safe)]


def _csv(head: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(head)
    writer.writerows(rows)
    return buffer.getvalue()


def _num(v: float) -> str:
    return f"{v:.3f}" if np.isfinite(v) else ""
