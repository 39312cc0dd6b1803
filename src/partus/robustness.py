"""Shift-aware evaluation: figures that predict how a model behaves on scans it has never seen.

Plain out-of-fold figures on psfhs-dev were ~3 deg optimistic about unseen scans (the generalisation
issue). This module reports, beside them:

- the **AoP-band table**: MAE and signed bias by ground-truth AoP (< 90, 90-110, 110-130, >= 130 deg);
  unseen scans are earlier in labour on average, and high angles were strongly underestimated;
- the **acquisition-shift suite** (:mod:`partus.data.shift`) applied to the validation scans;
- **mirrored** validation scans with anatomical labels (a scanner's left-right display preset).

It is pure numpy and model-agnostic: it takes a ``predict`` callable, so the torch cross-validation and
the shipped ONNX path are judged by the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .data.shift import SHIFTS, apply_shift, mirror
from .evaluate import aop_errors, point_errors
from .geometry import angle_of_progression

__all__ = [
    "AOP_BANDS",
    "band_table",
    "jsonable",
    "markdown_tables",
    "pool",
    "shift_aware_report",
    "summarise",
    "variant_metrics",
]

#: Ground-truth AoP bands (deg) of the band table: (label, low inclusive, high exclusive).
AOP_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<90", -math.inf, 90.0),
    ("90-110", 90.0, 110.0),
    ("110-130", 110.0, 130.0),
    (">=130", 130.0, math.inf),
)

#: ``predict(images) -> (points (N, 3, 2) with NaN where none, ok (N,) bool or None)``
PredictFn = Callable[[list[np.ndarray]], tuple[np.ndarray, "np.ndarray | None"]]


def _r(v: float, nd: int = 3) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def band_table(pred: np.ndarray, gt: np.ndarray) -> list[dict[str, Any]]:
    """AoP MAE and signed bias (pred - gt) per ground-truth AoP band; rows ``{band, n, mae, bias}``."""
    signed = aop_errors(pred, gt)
    g = np.asarray(gt, float).reshape(-1, 3, 2)
    gt_aop = angle_of_progression(g[:, 0], g[:, 1], g[:, 2]) if len(g) else np.zeros(0)
    rows = []
    for label, lo, hi in AOP_BANDS:
        sel = (gt_aop >= lo) & (gt_aop < hi) & np.isfinite(signed)
        s = signed[sel]
        rows.append({"band": label, "n": int(sel.sum()), "mae": _r(np.abs(s).mean()) if s.size else None,
                     "bias": _r(s.mean()) if s.size else None})  # fmt: skip
    return rows


def variant_metrics(pred: np.ndarray, gt: np.ndarray, ok: np.ndarray | None = None) -> dict[str, Any]:
    """MRE, AoP MAE/median/bias, missing and flagged shares of one evaluated variant.

    Missing predictions (NaN points) are excluded from the error figures and counted in ``missing``.
    With ``ok`` (the verdict per scan), ``flagged`` is the share not ok, and ``aop_mae_kept`` /
    ``aop_mae_flagged`` compare the errors of the two groups (a verdict is useful when flagged >> kept).
    """
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    err = point_errors(pred, gt)
    signed = aop_errors(pred, gt)
    have = np.isfinite(err).all(axis=1) & np.isfinite(signed)
    ae = np.abs(signed[have])
    out: dict[str, Any] = {
        "n": int(len(gt)),
        "missing": int((~have).sum()),
        "mre": _r(err[have].mean()) if have.any() else None,
        "fh1": _r(err[have, 2].mean()) if have.any() else None,
        "aop_mae": _r(ae.mean()) if ae.size else None,
        "aop_median": _r(np.median(ae)) if ae.size else None,
        "aop_bias": _r(signed[have].mean()) if ae.size else None,
    }
    if ok is not None:
        ok = np.asarray(ok, bool)
        out["flagged"] = _r(1.0 - ok.mean(), 4)
        kept, flagged = have & ok, have & ~ok
        out["aop_mae_kept"] = _r(np.abs(signed[kept]).mean()) if kept.any() else None
        out["aop_mae_flagged"] = _r(np.abs(signed[flagged]).mean()) if flagged.any() else None
    return out


def shift_aware_report(
    predict: PredictFn,
    images: Sequence[np.ndarray],
    points: Sequence[np.ndarray] | np.ndarray,
    *,
    predict_mirrored: PredictFn | None = None,
    shifts: Sequence[str] | None = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Evaluate ``predict`` on plain, shifted and mirrored copies of labelled scans.

    Parameters
    ----------
    predict : callable
        ``images -> (points (N, 3, 2), ok (N,) or None)``; points in the images' own pixels. It is called
        on the plain scans first, then on each shift in order, then (unless ``predict_mirrored``) on the
        mirrored copies.
    images, points
        uint8 scans and their ``(3, 2)`` landmarks (PS1, PS2, FH1).
    predict_mirrored : callable, optional
        Used for the mirrored copies (default ``predict``; e.g. a predictor told the orientation).
    shifts : names, optional
        Subset of :data:`partus.data.shift.SHIFTS` (default: all).
    indices : ints, optional
        A stable index per scan (e.g. its position in the whole data set) seeding its shifts, so a scan
        gets the same shifted copy whichever fold it is validated in.

    Returns
    -------
    dict
        ``plain`` (variant metrics + ``bands``), ``shifts`` (name -> metrics), ``mirrored`` (metrics),
        and ``raw``: per variant the predicted points, ground truth and verdicts (for pooling folds).
    """
    images = list(images)
    gt = np.asarray(points, float)
    idx = list(range(len(images))) if indices is None else list(indices)
    names = list(SHIFTS) if shifts is None else list(shifts)
    raw: dict[str, tuple] = {}
    p, ok = predict(images)
    raw["plain"] = (np.asarray(p, float), gt, ok)
    for name in names:
        scans = [apply_shift(name, im, pt, seed=seed, index=i) for im, pt, i in zip(images, gt, idx, strict=True)]
        keep = [k for k, s in enumerate(scans) if s.valid]
        if not keep:  # every copy left the image: reported with n = 0
            raw[name] = (np.zeros((0, 3, 2)), np.zeros((0, 3, 2)), None)
            continue
        p, ok = predict([scans[k].image for k in keep])
        raw[name] = (np.asarray(p, float), np.stack([scans[k].points for k in keep]), ok)
    mirrored = [mirror(im, pt) for im, pt in zip(images, gt, strict=True)]
    p, ok = (predict_mirrored or predict)([s.image for s in mirrored])
    raw["mirrored"] = (np.asarray(p, float), np.stack([s.points for s in mirrored]), ok)
    return summarise(raw)


def summarise(raw: dict[str, tuple]) -> dict[str, Any]:
    """Metrics from ``raw`` (variant -> (pred, gt, ok)); also pools folds when their raw arrays are joined."""
    plain = variant_metrics(*raw["plain"])
    plain["bands"] = band_table(raw["plain"][0], raw["plain"][1])
    shifts = {k: variant_metrics(*v) for k, v in raw.items() if k not in ("plain", "mirrored")}
    out: dict[str, Any] = {"plain": plain, "shifts": shifts}
    if shifts:
        maes = [m["aop_mae"] for m in shifts.values() if m["aop_mae"] is not None]
        mres = [m["mre"] for m in shifts.values() if m["mre"] is not None]
        out["shift_mean"] = {"aop_mae": _r(np.mean(maes)) if maes else None,
                             "mre": _r(np.mean(mres)) if mres else None,
                             "worst": max((k for k in shifts if shifts[k]["aop_mae"] is not None),
                                          key=lambda k: shifts[k]["aop_mae"], default=None)}  # fmt: skip
        flags = [m["flagged"] for m in shifts.values() if m.get("flagged") is not None]
        if flags:
            out["shift_mean"]["flagged"] = _r(np.mean(flags), 4)
    if "mirrored" in raw:
        out["mirrored"] = variant_metrics(*raw["mirrored"])
    out["raw"] = raw
    return out


def pool(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from several folds' reports (their raw predictions concatenated)."""
    keys = list(reports[0]["raw"])
    raw = {}
    for k in keys:
        parts = [r["raw"][k] for r in reports]
        oks = [o for _, _, o in parts]
        raw[k] = (np.concatenate([p for p, _, _ in parts]), np.concatenate([g for _, g, _ in parts]),
                  None if any(o is None for o in oks) else np.concatenate(oks))  # fmt: skip
    return summarise(raw)


def jsonable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its raw arrays."""
    return {k: v for k, v in report.items() if k != "raw"}


def markdown_tables(report: dict[str, Any], title: str = "") -> str:
    """The band table and the shift table of a report, as Markdown."""

    def f(v, nd=2):
        return "–" if v is None else f"{v:.{nd}f}"

    lines = [f"**{title}**", ""] if title else []
    lines += ["| GT AoP band | n | AoP MAE ° | signed bias ° |", "|---|---|---|---|"]
    for b in report["plain"]["bands"]:
        lines.append(f"| {b['band']} | {b['n']} | {f(b['mae'])} | {f(b['bias'])} |")
    has_flags = report["plain"].get("flagged") is not None
    head = "| variant | n | MRE px | FH1 px | AoP MAE ° (median) | bias ° |" + (" flagged % |" if has_flags else "")
    lines += ["", head, "|---|---|---|---|---|---|" + ("---|" if has_flags else "")]
    rows = [("plain", report["plain"]), *report["shifts"].items()]
    if "mirrored" in report:
        rows.append(("mirrored (anatomical labels)", report["mirrored"]))
    for name, m in rows:
        flag = f" {f(100 * m['flagged'], 1)} |" if has_flags and m.get("flagged") is not None else (
            " – |" if has_flags else "")  # fmt: skip
        lines.append(f"| {name} | {m['n'] - m['missing']} | {f(m['mre'])} | {f(m['fh1'])} | "
                     f"{f(m['aop_mae'])} ({f(m['aop_median'])}) | {f(m['aop_bias'])} |{flag}")  # fmt: skip
    if "shift_mean" in report:
        sm = report["shift_mean"]
        lines += ["", f"Shift-suite mean: AoP MAE {f(sm['aop_mae'])}°, MRE {f(sm['mre'])} px"
                  + (f", flagged {f(100 * sm['flagged'], 1)} %" if sm.get("flagged") is not None else "")
                  + f"; worst shift: {sm['worst']}."]  # fmt: skip
    return "\n".join(lines) + "\n"
