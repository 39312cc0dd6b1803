"""Quality verdicts: is an image worth measuring, and is a measurement anatomically plausible?

Pure numpy. The limits are deliberately wide (they flag failures, not unusual anatomy); their defaults
come from the 658 annotated PSFHS scans (AoP 57.7-179.6 deg, PS length 15-38 % of the image width) and
were calibrated for the shipped model on the shift suite: each confidence floor at the 1.75 % tail of
held-out blocks-CV scans, plain and shifted, rounded, and the heads' AoP disagreement near its 2 % tail
(``python scripts/ship_model.py --calibrate-only`` prints the table; the model card has the result).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .conventions import FH, LANDMARKS, PS, Status
from .measurement import Measurement

__all__ = ["DEFAULT_LIMITS", "QualityLimits", "check_image", "check_measurement"]


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds of the verdict.

    Attributes
    ----------
    min_side, max_side : int
        Images with a side below ``min_side`` carry too little detail; above ``max_side`` they are not
        ultrasound frames (and would cost gigabytes to segment at full size).
    min_contrast : float
        Standard deviation of the 8-bit gray levels below which a frame is blank (no ultrasound content).
    min_confidence : float
        Lowest acceptable confidence of a segmentation model or head in any landmark: the mean class
        probability over the predicted structure.
    min_peak : float
        Lowest acceptable confidence of a heatmap model or head: heatmap peak height (the shipped model's
        heatmaps are flat, trained with label noise: its peaks are low even when right).
    min_dsnt_mass : float
        Lowest acceptable confidence of a DSNT model or head: the probability mass within 2 px of its peak.
    max_aop_spread : float
        Largest disagreement (deg) between the AoPs of an ensemble's members or a multitask model's heads;
        above it they do not agree on the anatomy. Smaller spreads are only weakly related to the error of
        the fused AoP, so they are reported (``aop_spread_deg``), not rejected.
    aop_range : (float, float)
        Plausible intrapartum AoP in degrees.
    ps_length_range : (float, float)
        Plausible symphysis length PS1-PS2 as a fraction of the image's shorter side (annotated: 15-38 %;
        a head-only view, e.g. fetal biometry, often yields a short false "symphysis").
    min_standard_plane : float
        P(standard plane) from a model's plane head below which an image is not a standard plane (the
        symphysis and the head not both in view: a sweep's passing frame, a shadow, other anatomy). Set
        low on purpose: out of fold, 1 % of held-out intrapartum scans score below it, but 5 % of the
        early-labour block's (a head that never saw early labour scores those near zero), and higher
        floors refuse far more of them (``scripts/plane_head.py``; model card). So this check refuses only
        frames the head is all but certain of; the other checks carry the rest. Clips select frames with
        a stricter floor (:func:`partus.clip.measure_clip`).
    mirror_threshold : float
        P(mirrored) from a model's orientation head above which ``orientation="auto"`` measures a scan as a
        mirrored display (canonicalised). A false flip and a missed mirrored display both measure the anatomy
        the wrong way round; 0.8 made the fewest of both on the held-out blocks of two CV draws pooled, plain
        and shifted, in either display (``scripts/orientation_threshold.py``; 0.5 made 31 % more).
    max_echo_free : float
        Largest share of a predicted structure's pixels that may be echo-free (gray level <= 3). A
        structure drawn over a blank region (outside the ultrasound sector, or nothing in view) is a
        hallucination; on the 658 annotated PSFHS scans the share is at most 0.78 for the head (its
        interior is dark) and 0.22 for the symphysis.
    min_refiner_mass : float
        Lowest acceptable confidence of a symphysis refiner (:mod:`partus.refine`) in any landmark its window
        reads: the probability mass within 2 px of its map's peak (as a DSNT head's). Off (0) by default:
        its maps are sharper on a symphysis than on a view without one, but on the held-out blocks a floor
        refused few more non-intrapartum proxies for more flagged good scans (benchmarks/ACCURACY.md, "A
        second look at the symphysis").
    """

    min_side: int = 32
    max_side: int = 4096
    min_contrast: float = 3.0
    min_confidence: float = 0.64
    min_peak: float = 0.0035
    min_dsnt_mass: float = 0.032
    max_aop_spread: float = 60.0
    aop_range: tuple[float, float] = (45.0, 180.0)
    ps_length_range: tuple[float, float] = (0.13, 0.6)
    max_echo_free: float = 0.95
    min_standard_plane: float = 1.8e-11
    mirror_threshold: float = 0.8
    min_refiner_mass: float = 0.0


#: The default thresholds.
DEFAULT_LIMITS = QualityLimits()


def check_image(gray: np.ndarray, limits: QualityLimits = DEFAULT_LIMITS) -> str | None:
    """The reason an 8-bit gray image cannot be measured, or ``None`` if it may be."""
    h, w = gray.shape[:2]
    if min(h, w) < limits.min_side:
        return f"image too small ({h}x{w} pixels; at least {limits.min_side} per side needed)"
    if max(h, w) > limits.max_side:
        return f"image too large ({h}x{w} pixels; at most {limits.max_side} per side)"
    contrast = float(np.std(gray))
    if contrast < limits.min_contrast:
        spread = f"gray-level spread {contrast:.1f} < {limits.min_contrast:g}"
        return f"blank or uniform image ({spread}): no ultrasound content"
    return None


def _structure_reason(gray: np.ndarray, label_map: np.ndarray, limits: QualityLimits) -> str | None:
    """The reason a predicted PS/FH label map is not credible on its image, or ``None``."""
    for name, value in (("pubic symphysis", PS), ("fetal head", FH)):
        region = gray[label_map == value]
        if region.size and float(np.mean(region <= 3)) > limits.max_echo_free:
            return f"the predicted {name} lies on an echo-free (blank) region: no {name} in view"
    return None


def check_measurement(
    m: Measurement,
    image_shape: tuple[int, int],
    confidences: Sequence[tuple[str, np.ndarray]],
    limits: QualityLimits = DEFAULT_LIMITS,
    *,
    aop_spread: float | None = None,
    gray: np.ndarray | None = None,
    label_map: np.ndarray | None = None,
    standard_plane: float | None = None,
) -> Measurement:
    """``m`` unchanged if plausible, else the same numbers with ``status="not measurable"`` and the reason.

    ``confidences`` holds ``(kind, (3,) confidences)`` per model (``kind`` "segmentation", "heatmap" or
    "dsnt"); ``aop_spread`` is the ensemble members' AoP disagreement (inf: one of them gives no angle);
    ``gray`` and ``label_map`` are the 8-bit image and the predicted PS/FH labels, when a segmentation model
    made them; ``standard_plane`` is
    P(standard plane) from a plane head. Checks, in order: the plane, predicted structures over echo-free
    regions, each model's confidence in each landmark, the members' agreement, the symphysis length
    relative to the image, and the AoP range. Numbers are kept so a
    reviewer can see what was rejected.
    """
    if standard_plane is not None and not standard_plane >= limits.min_standard_plane:
        plane = f"P {standard_plane:.2g} < {limits.min_standard_plane:g}"
        return _reject(m, f"not a standard plane ({plane}): the symphysis and the fetal head are not both in view")
    if not m.ok or m.landmarks is None:
        return m
    if gray is not None and label_map is not None:
        reason = _structure_reason(gray, label_map, limits)
        if reason is not None:
            return _reject(m, reason)
    for kind, conf in confidences:
        floor = {"segmentation": limits.min_confidence, "dsnt": limits.min_dsnt_mass,
                 "refiner": limits.min_refiner_mass}.get(kind, limits.min_peak)  # fmt: skip
        values = np.asarray(conf, dtype=float).reshape(-1)
        low = [f"{n} {c:.2f}" for n, c in zip(LANDMARKS, values, strict=False) if not c >= floor]
        if low:
            who = "symphysis refiner" if kind == "refiner" else f"{kind} model"
            return _reject(m, f"low {who} confidence ({', '.join(low)} < {floor:g})")
    if aop_spread is not None and math.isinf(aop_spread):  # whatever the limit: an estimate had no angle
        return _reject(m, "a landmark estimate (ensemble member or head) gives no angle: its points are degenerate")
    if aop_spread is not None and not aop_spread <= limits.max_aop_spread:
        spread = f"{aop_spread:.1f} deg"
        return _reject(m, f"the landmark estimates (ensemble members or heads) disagree on the AoP by {spread}")
    pts = m.landmarks.to_array()
    rel = math.dist(pts[0], pts[1]) / min(image_shape[:2])
    lo, hi = limits.ps_length_range
    if not lo <= rel <= hi:
        return _reject(m, f"implausible symphysis length ({rel:.0%} of the image; expected {lo:.0%}-{hi:.0%})")
    lo, hi = limits.aop_range
    if not lo <= m.aop <= hi:
        return _reject(m, f"implausible AoP {m.aop:.1f} deg (expected {lo:g}-{hi:g})")
    return m


def _reject(m: Measurement, reason: str) -> Measurement:
    return replace(m, status=Status.NOT_MEASURABLE, reason=reason)
