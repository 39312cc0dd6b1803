"""Geometry of labour progress: AoP, HSD, landmarks from masks (clean-up re-exported from cleanup).

Pure NumPy plus OpenCV's contour tracing (the reference rule is defined on OpenCV's
``findContours(RETR_EXTERNAL, CHAIN_APPROX_NONE)`` output). No torch, no I/O.

Points are ``(x, y)`` pixel coordinates (see :mod:`partus.conventions`); masks are ``H x W`` arrays.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from ._validation import binary_array as _binary
from ._validation import contour_array as _contour
from ._validation import point_array as _points
from ._validation import spacing_array as _spacing
from .cleanup import clean_label_map, clean_mask
from .conventions import FH, PS, HSDMethod, Orientation, parse_enum
from .errors import NotMeasurableError
from .measurement import Landmarks, Measurement

#: Two FH contour points whose angles at PS1 differ by less than this lie on the same tangent line.
TANGENT_ANGLE_TOL = 1e-9

__all__ = [
    "angle_of_progression",
    "clean_label_map",
    "clean_mask",
    "hsd_infrapubic",
    "hsd_nearest",
    "landmarks_from_mask",
    "largest_contour",
    "measure_landmarks",
    "measure_mask",
    "symphysis_endpoints",
    "tangent_point",
]


# --------------------------------------------------------------------------- measurements
def angle_of_progression(ps1: Any, ps2: Any, fh1: Any) -> float | np.ndarray:
    """Angle of Progression: the angle at PS1 between ``PS2 - PS1`` and ``FH1 - PS1``.

    Parameters
    ----------
    ps1, ps2, fh1 : array_like, shape (2,) or (N, 2)
        ``(x, y)`` points; PS1 is the vertex.

    Returns
    -------
    float or ndarray, shape (N,)
        Angle in degrees in ``[0, 180]`` (computed as ``atan2(|cross|, dot)``, accurate near 0 and 180).

    Raises
    ------
    ValueError
        If shapes differ or are not ``(2,)``/``(N, 2)``, a value is not finite, or PS2 or FH1 coincides
        with PS1 (the angle is then undefined).

    Examples
    --------
    >>> round(angle_of_progression((0, 0), (-1, 0), (1, 1)), 6)
    135.0
    """
    a, b, c = _points(ps1, "ps1"), _points(ps2, "ps2"), _points(fh1, "fh1")
    if not (a.shape == b.shape == c.shape):
        raise ValueError(f"ps1, ps2, fh1 must have the same shape, got {a.shape}, {b.shape}, {c.shape}")
    u, v = b - a, c - a
    for vec, name in ((u, "ps2"), (v, "fh1")):
        if np.any(np.all(vec == 0, axis=-1)):
            raise ValueError(f"ps1 and {name} coincide; the angle of progression is undefined")
    cross = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    dot = (u * v).sum(axis=-1)
    deg = np.degrees(np.arctan2(np.abs(cross), dot))
    return float(deg) if deg.ndim == 0 else deg


def aop_rows(points: np.ndarray) -> np.ndarray:
    """AoP of each ``(3, 2)`` row of ``(N, 3, 2)`` points (PS1, PS2, FH1); NaN where a point is not finite or
    PS2/FH1 coincides with PS1 (the angle is undefined), instead of raising like :func:`angle_of_progression`."""
    points = np.asarray(points, dtype=float).reshape(-1, 3, 2)
    out = np.full(len(points), np.nan)
    ok = np.isfinite(points).all(axis=(1, 2))
    ok &= (points[:, 1] != points[:, 0]).any(axis=1) & (points[:, 2] != points[:, 0]).any(axis=1)
    if ok.any():
        out[ok] = angle_of_progression(points[ok, 0], points[ok, 1], points[ok, 2])
    return out


def hsd_nearest(ps1: Any, fh_contour: Any) -> float:
    """Head-symphysis distance (IUGC 2024): from PS1 to the nearest fetal-head contour point, in px."""
    p = _points(ps1, "ps1")
    pts = _contour(fh_contour, "fh_contour").astype(float)
    return float(np.sqrt(((pts - p) ** 2).sum(axis=1)).min())


def hsd_infrapubic(ps1: Any, ps2: Any, fh_contour: Any) -> float:
    """Head-symphysis distance along the infrapubic line, in px.

    The infrapubic line passes through PS1 perpendicular to the symphysis axis ``PS2 - PS1`` and is
    followed towards the head (the side of the head contour's centroid). The distance is to the first
    crossing of the closed head contour.

    Raises
    ------
    NotMeasurableError
        If the line does not meet the head contour, or PS1 and PS2 coincide.
    """
    a, b = _points(ps1, "ps1"), _points(ps2, "ps2")
    pts = _contour(fh_contour, "fh_contour").astype(float)
    axis = b - a
    if not np.any(axis):
        raise NotMeasurableError("PS1 and PS2 coincide: the symphysis axis is undefined")
    n = np.array([-axis[1], axis[0]]) / math.hypot(*axis)
    if np.dot(pts.mean(axis=0) - a, n) < 0:
        n = -n
    if len(pts) == 1:
        pts = np.vstack([pts, pts])
    p, q = pts, np.roll(pts, -1, axis=0)  # closed polygon edges p -> q
    e = q - p
    denom = n[0] * e[:, 1] - n[1] * e[:, 0]  # cross(n, e)
    w = p - a
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (w[:, 0] * e[:, 1] - w[:, 1] * e[:, 0]) / denom  # distance along n
        s = (w[:, 0] * n[1] - w[:, 1] * n[0]) / denom  # position along the edge
    hit = (denom != 0) & (t >= 0) & (s >= 0) & (s <= 1)
    # Edges parallel to the line that lie on it: their endpoints are hits too.
    on_line = (denom == 0) & np.isclose(w[:, 0] * n[1] - w[:, 1] * n[0], 0.0)
    cands = list(t[hit])
    if np.any(on_line):
        proj = w[on_line] @ n
        cands += list(proj[proj >= 0])
    if not cands:
        raise NotMeasurableError("the infrapubic line does not meet the fetal head")
    return float(min(cands))


# --------------------------------------------------------------------------- contours and landmarks
def largest_contour(mask: Any) -> np.ndarray:
    """The external contour with the most boundary points, as an ``(N, 2)`` int array of ``(x, y)``.

    Uses OpenCV ``findContours(RETR_EXTERNAL, CHAIN_APPROX_NONE)``; the first contour wins ties.

    Raises
    ------
    NotMeasurableError
        If the mask is empty.
    """
    m = _binary(mask, "mask")
    if not m.any():
        raise NotMeasurableError("the structure is absent (empty mask)")
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    sizes = [len(c) for c in contours]
    return contours[int(np.argmax(sizes))].reshape(-1, 2).astype(np.int64)


def _farthest_pair(pts: np.ndarray) -> tuple[int, int]:
    """Indices ``i < j`` of the first pair (in contour order) at the largest squared distance.

    Only extreme points of the convex hull can be at the diameter, so the search is restricted to
    contour points that coincide with hull vertices; the result equals the exhaustive search.
    """
    if len(pts) < 2:
        return 0, 0
    hull = cv2.convexHull(pts.astype(np.int32).reshape(-1, 1, 2)).reshape(-1, 2)
    on_hull = (pts[:, None, :] == hull[None, :, :]).all(axis=2).any(axis=1)
    idx = np.flatnonzero(on_hull)
    sub = pts[idx]
    d2 = ((sub[:, None, :] - sub[None, :, :]) ** 2).sum(axis=2)
    d2 = np.triu(d2, k=1)  # i < j only
    flat = int(np.argmax(d2))  # row-major: smallest i, then smallest j
    i, j = divmod(flat, len(idx))
    return int(idx[i]), int(idx[j])


def symphysis_endpoints(
    ps_contour: Any,
    *,
    orientation: Orientation | str = Orientation.STANDARD,
) -> tuple[np.ndarray, np.ndarray]:
    """PS1 and PS2 from the symphysis contour: the farthest pair of contour points.

    Parameters
    ----------
    ps_contour : array_like, shape (N, 2)
        Contour points in contour order (as from :func:`largest_contour`).
    orientation : {"standard", "mirrored"}
        ``standard`` (official): PS1 is the endpoint with the larger x (the second of the pair on ties).
        ``mirrored``: the smaller x (the second of the pair on ties).

    Returns
    -------
    ps1, ps2 : ndarray, shape (2,)

    Raises
    ------
    NotMeasurableError
        If the contour is a single point (no axis).
    """
    pts = _contour(ps_contour, "ps_contour")
    orientation = parse_enum(Orientation, orientation, "orientation")
    i, j = _farthest_pair(pts)
    a, b = pts[i], pts[j]
    if np.array_equal(a, b):
        raise NotMeasurableError("the pubic symphysis is a single point: its axis is undefined")
    first = a[0] > b[0] if orientation == Orientation.STANDARD else a[0] < b[0]
    return (a, b) if first else (b, a)


def tangent_point(ps1: Any, ps2: Any, fh_contour: Any) -> np.ndarray:
    """FH1: the head contour point on the support tangent from PS1.

    The point maximising the angle at PS1 between ``PS2 - PS1`` and ``p - PS1``; among points within
    :data:`TANGENT_ANGLE_TOL` rad of the maximum (on the tangent line) the one nearest PS1, and the
    first in contour order among equals.

    Raises
    ------
    NotMeasurableError
        If every head contour point coincides with PS1.
    """
    a, b = _points(ps1, "ps1"), _points(ps2, "ps2")
    pts = _contour(fh_contour, "fh_contour")
    v = pts.astype(float) - a
    dist2 = (v**2).sum(axis=1)
    valid = dist2 > 0
    if not valid.any():
        raise NotMeasurableError("the fetal head contour coincides with PS1")
    u = b - a
    cross = u[0] * v[:, 1] - u[1] * v[:, 0]
    ang = np.where(valid, np.arctan2(np.abs(cross), v @ u), -np.inf)
    on_line = ang >= ang.max() - TANGENT_ANGLE_TOL
    best = np.flatnonzero(on_line)[np.argmin(dist2[on_line])]
    return pts[best]


def landmarks_from_mask(
    label_map: Any,
    *,
    ps_label: int = PS,
    fh_label: int = FH,
    orientation: Orientation | str = Orientation.STANDARD,
) -> Landmarks:
    """PS1, PS2, FH1 from a PS/FH label map by the official rule (``docs/conventions.md``).

    Parameters
    ----------
    label_map : array_like, shape (H, W), integer
        Label map with ``ps_label`` for the pubic symphysis and ``fh_label`` for the fetal head.
    ps_label, fh_label : int
        Label values (partus/PSFHS: 1 and 2; IUGC 2024 training masks: 7 and 8).
    orientation : {"standard", "mirrored"}
        Which symphysis end is PS1; ``standard`` is the official rule (see
        :class:`partus.conventions.Orientation`).

    Returns
    -------
    Landmarks
        Integer pixel coordinates (contour points).

    Raises
    ------
    NotMeasurableError
        If a structure is absent or degenerate.
    ValueError
        If ``label_map`` is not a 2-D integer array.
    """
    lab = np.asarray(label_map)
    _binary(lab, "label_map")
    ps_c, fh_c = _structure_contours(lab, ps_label, fh_label)
    ps1, ps2 = symphysis_endpoints(ps_c, orientation=orientation)
    fh1 = tangent_point(ps1, ps2, fh_c)
    return Landmarks.from_array([ps1, ps2, fh1])


def _structure_contours(lab: np.ndarray, ps_label: int, fh_label: int) -> tuple[np.ndarray, np.ndarray]:
    missing = [n for n, v in (("pubic symphysis", ps_label), ("fetal head", fh_label)) if not (lab == v).any()]
    if missing:
        raise NotMeasurableError(f"{' and '.join(missing)} not found in the mask")
    return largest_contour(lab == ps_label), largest_contour(lab == fh_label)


def measure_landmarks(
    landmarks: Landmarks | Any,
    *,
    fh_contour: Any = None,
    hsd_method: HSDMethod | str = HSDMethod.NEAREST,
    pixel_spacing: tuple[float, float] | None = None,
    orientation: Orientation | str = Orientation.STANDARD,
) -> Measurement:
    """AoP (and HSD when a head contour is given) from three landmarks; never raises on bad geometry.

    HSD needs the head contour; without one it is NaN. With ``pixel_spacing=(sx, sy)`` (mm per pixel
    along x and y) HSD is reported in mm (the contour is scaled anisotropically before measuring).
    """
    hsd_method = parse_enum(HSDMethod, hsd_method, "hsd_method")
    orientation = parse_enum(Orientation, orientation, "orientation")
    lm = landmarks if isinstance(landmarks, Landmarks) else Landmarks.from_array(landmarks)
    unit = "px" if pixel_spacing is None else "mm"
    meta = {"hsd_method": hsd_method, "orientation": orientation, "hsd_unit": unit}
    ps1, ps2, fh1 = lm.to_array()
    try:
        aop = angle_of_progression(ps1, ps2, fh1)
    except ValueError as exc:
        return Measurement.not_measurable(str(exc), lm, **meta)
    hsd = math.nan
    if fh_contour is not None:
        scale = np.ones(2) if pixel_spacing is None else _spacing(pixel_spacing)
        contour = np.asarray(fh_contour, dtype=float) * scale
        try:
            if hsd_method == HSDMethod.NEAREST:
                hsd = hsd_nearest(ps1 * scale, contour)
            else:
                hsd = hsd_infrapubic(ps1 * scale, ps2 * scale, contour)
        except NotMeasurableError as exc:
            return Measurement.not_measurable(exc.reason, lm, aop=aop, **meta)
    return Measurement(landmarks=lm, aop=aop, hsd=hsd, **meta)


def measure_mask(
    label_map: Any,
    *,
    ps_label: int = PS,
    fh_label: int = FH,
    orientation: Orientation | str = Orientation.STANDARD,
    hsd_method: HSDMethod | str = HSDMethod.NEAREST,
    pixel_spacing: tuple[float, float] | None = None,
    clean: bool = False,
    allow_border: bool = False,
) -> Measurement:
    """Landmarks, AoP and HSD from a label map, with a verdict; never raises on degenerate masks.

    Parameters
    ----------
    label_map : array_like, shape (H, W), integer
    clean : bool
        Apply :func:`clean_label_map` first (for predicted masks; ground-truth masks are used as they are).
    allow_border : bool
        A symphysis endpoint on the image border may be cut off by the field of view, so by default
        such a mask is "not measurable". Set True to measure it anyway (the official rule does).

    Returns
    -------
    Measurement
        ``status == "ok"``, or ``"not measurable"`` with the reason.

    Raises
    ------
    ValueError
        Only for programming errors: not a 2-D integer array, unknown option values.
    """
    lab = np.asarray(label_map)
    _binary(lab, "label_map")
    orientation = parse_enum(Orientation, orientation, "orientation")
    hsd_method = parse_enum(HSDMethod, hsd_method, "hsd_method")
    if pixel_spacing is not None:
        _spacing(pixel_spacing)
    meta = {"hsd_method": hsd_method, "orientation": orientation, "hsd_unit": "px" if pixel_spacing is None else "mm"}
    if clean:
        lab = clean_label_map(lab, ps_label=ps_label, fh_label=fh_label)
    try:
        ps_c, fh_c = _structure_contours(lab, ps_label, fh_label)
        ps1, ps2 = symphysis_endpoints(ps_c, orientation=orientation)
        fh1 = tangent_point(ps1, ps2, fh_c)
    except NotMeasurableError as exc:
        return Measurement.not_measurable(exc.reason, **meta)
    lm = Landmarks.from_array([ps1, ps2, fh1])
    if not allow_border:
        h, w = lab.shape
        for name, p in (("PS1", ps1), ("PS2", ps2)):
            if p[0] in (0, w - 1) or p[1] in (0, h - 1):
                reason = f"{name} lies on the image border: the symphysis may extend beyond the field of view"
                return Measurement.not_measurable(reason, lm, **meta)
    return measure_landmarks(
        lm, fh_contour=fh_c, hsd_method=hsd_method, pixel_spacing=pixel_spacing, orientation=orientation
    )
