"""Turning the symphysis about PS1: an augmentation that changes the Angle of Progression exactly.

The networks' largest systematic error is a pull of the AoP towards the training scans' typical angle
(high angles read low, early labour reads high: ``benchmarks/ACCURACY.md``). In the training scans the
symphysis' direction and the head's position vary together; a network can read the angle partly from
that context. :func:`turn_symphysis` loosens the link: it turns the symphysis (and the tissue beyond it)
about PS1 by ``theta`` while the head's far flank, where FH1 is, stays put, so the same scan is shown
with another angle.

The warp is angular about PS1. A pixel at distance ``r`` from PS1 and at angle ``t`` from the symphysis
axis (``PS2 - PS1``, measured towards the head; FH1 is at ``t = AoP``) moves to ``t + theta * w * v(r)``:

- ``w = 1`` over the symphysis (the sector its mask spans beyond its tip, at least ``core_deg``) and
  within a quarter of its length of PS1 (the tip turns whole);
- ``w = 0`` from ``fix_deg`` before FH1's angle to the head's last angle (the flank through which the
  tangent from PS1 passes), with a smoothstep across the two arcs in between (the one between the
  symphysis and FH1, across the rest of the head, and the one round the other side);
- ``v = 1`` up to 1.5 symphysis lengths from PS1, falling smoothly to ``0`` at 3 lengths, so the far
  field (the fan's edge) barely moves.

Radii are kept and the angular map is monotonic (``theta`` is clipped so that no arc is squeezed to less
than 40 % of its width), so nothing folds over, and no head pixel passes FH1's angle; nor may a turn away
from the head take any head pixel past 178° from the axis. PS1 and FH1 stay
put, PS2 turns by ``theta`` about PS1, and FH1 stays the tangent point: the AoP becomes ``AoP - theta``
exactly (positive ``theta`` turns the symphysis towards the head). The head between the symphysis and
its far flank bends with the turn; masks follow with nearest-neighbour sampling.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..conventions import FH, PS

__all__ = ["turn_symphysis"]

#: The smallest share of a bending arc's width left after the turn (the map's smallest angular slope).
MIN_SLOPE = 0.4
#: The largest AoP a turn may produce (the angle is measured in [0, 180]: past it FH1 would not be the tangent).
MAX_AOP = 178.0


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def turn_symphysis(
    image: np.ndarray,
    points: np.ndarray,
    mask: np.ndarray | None,
    theta_deg: float,
    *,
    core_deg: float = 15.0,
    fix_deg: float = 10.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """Turn the symphysis about PS1 by (up to) ``theta_deg``; see the module docstring.

    Parameters
    ----------
    image : ndarray, shape (H, W), uint8
    points : ndarray, shape (3, 2)
        PS1, PS2, FH1 as ``(x, y)`` pixel coordinates.
    mask : ndarray, shape (H, W), optional
        Label map (``conventions.PS`` / ``FH``), warped with the scan; the symphysis' and the head's
        angular extents come from it (else the rigid sector is ``core_deg`` wide).
    theta_deg : float
        Requested turn; positive turns the symphysis towards the head (the AoP decreases by it).
    core_deg : float
        Least half-width of the angular sector about the axis that turns rigidly.
    fix_deg : float
        How far before FH1's angle the head stays still.

    Returns
    -------
    image, points, mask, theta : the warped scan and the turn applied (0 when the geometry leaves no room:
        degenerate points, no room between the symphysis and FH1, or an AoP already near 180°).
    """
    pts = np.asarray(points, float)
    ps1, ps2, fh1 = pts
    u, d_fh = ps2 - ps1, fh1 - ps1
    length = float(np.hypot(*u))
    cross = u[0] * d_fh[1] - u[1] * d_fh[0]
    if theta_deg == 0 or length < 2 or np.hypot(*d_fh) < 2 or cross == 0 or not np.isfinite(pts).all():
        return image, pts, mask, 0.0
    s = 1.0 if cross > 0 else -1.0  # the head's side: angles t grow from the axis towards it
    phi_u = np.arctan2(u[1], u[0])

    def angle(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Angle from the axis towards the head, degrees in [0, 360)."""
        c = s * (u[0] * dy - u[1] * dx)
        return np.degrees(np.arctan2(c, u[0] * dx + u[1] * dy)) % 360.0

    aop = float(angle(d_fh[0:1], d_fh[1:2])[0])
    t_fix, t_hi = aop - fix_deg, aop  # the head's far flank, kept still
    # near PS1 everything turns (the symphysis' tip keeps its shape), short of FH1 and the head's far flank
    r_in = min(0.25 * length, float(np.hypot(*d_fh)) / 2.2)
    if mask is not None:
        ys, xs = np.nonzero(mask == FH)
        flank = np.abs(angle(xs - ps1[0], ys - ps1[1]) - aop) < 30.0
        if flank.any():  # the tip's rigid turn stops short of the head's far flank
            r_in = min(r_in, float(np.hypot(xs[flank] - ps1[0], ys[flank] - ps1[1]).min()) / 2.2)
        for label in (PS, FH):
            ys, xs = np.nonzero(mask == label)
            keep = np.hypot(xs - ps1[0], ys - ps1[1]) >= r_in
            t = angle(xs[keep] - ps1[0], ys[keep] - ps1[1])
            if label == PS and t.size:  # the rigid sector holds the whole symphysis beyond its tip
                core_deg = max(core_deg, float(np.minimum(t, 360.0 - t).max()) + 2.0)
            if label == FH and (beyond := t[(t > aop) & (t < 360.0 - core_deg)]).size:
                t_hi = max(t_hi, float(beyond.max()))  # head pixels past FH1's angle stay still too
    gap_in, gap_out = t_fix - core_deg, (360.0 - core_deg) - t_hi  # the two arcs that bend
    if gap_in <= 0 or gap_out <= 0:
        return image, pts, mask, 0.0
    # smoothstep's steepest slope is 1.5 / width: the map's slope 1 - 1.5 |theta| / width stays >= MIN_SLOPE;
    # turning away from the head, no head pixel may pass MAX_AOP from the turned axis
    lo = max(-(1.0 - MIN_SLOPE) * gap_out / 1.5, t_hi - MAX_AOP)
    hi = (1.0 - MIN_SLOPE) * gap_in / 1.5
    if lo > hi:
        return image, pts, mask, 0.0
    theta = float(np.clip(theta_deg, lo, hi))
    if theta == 0:
        return image, pts, mask, 0.0

    def weight(t: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The angular weight at ``t`` (at least ``floor``) and its derivative in ``t``."""
        w, dw = np.zeros_like(t), np.zeros_like(t)
        w[(t <= core_deg) | (t >= 360.0 - core_deg)] = 1.0
        for sel, x0, width, sign in (((t > core_deg) & (t < t_fix), core_deg, gap_in, -1.0),
                                     ((t > t_hi) & (t < 360.0 - core_deg), t_hi, gap_out, 1.0)):  # fmt: skip
            x = (t[sel] - x0) / width
            w[sel] = (1.0 - _smoothstep(x)) if sign < 0 else _smoothstep(x)
            dw[sel] = sign * 6.0 * x * (1.0 - x) / width
        low = w < floor
        return np.where(low, floor, w), np.where(low, 0.0, dw)

    h, w_ = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w_].astype(np.float64)
    dx, dy = xx - ps1[0], yy - ps1[1]
    r = np.hypot(dx, dy)
    floor = 1.0 - _smoothstep((r - r_in) / max(r_in, 1e-6))
    a = theta * (1.0 - _smoothstep((r / length - 1.5) / 1.5))  # the turn at this radius, degrees
    t_out = angle(dx, dy)
    t_src = t_out - a * weight(t_out, floor)[0]
    for _ in range(8):  # Newton on t + a w(t) = t_out (mod 360; monotonic: 1 + a w' >= MIN_SLOPE)
        wv, dwv = weight(t_src, floor)
        residual = (t_src + a * wv - t_out + 180.0) % 360.0 - 180.0
        t_src = (t_src - residual / (1.0 + a * dwv)) % 360.0
    ang = phi_u + s * np.radians(t_src)
    map_x = (ps1[0] + r * np.cos(ang)).astype(np.float32)
    map_y = (ps1[1] + r * np.sin(ang)).astype(np.float32)
    img = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    msk = None
    if mask is not None:
        src = mask.astype(np.uint8)  # label values 0..255; remap has no int64
        msk = cv2.remap(src, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        msk = msk.astype(mask.dtype, copy=False)
    turn = phi_u + s * np.radians(theta)
    out = pts.copy()
    out[1] = ps1 + length * np.array([np.cos(turn), np.sin(turn)])
    return img, out, msk, theta
