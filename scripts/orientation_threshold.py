"""Calibrate ``QualityLimits.mirror_threshold`` (``--orientation auto``: a scan is taken for a mirrored display
when the orientation head's P(mirrored) exceeds it) on held-out scans of one or more blocks CVs.

Every fold's last checkpoint, exported to ONNX, runs through :class:`partus.predict.Predictor` on its held-out
block: the scans as displayed and mirrored (anatomical labels), each plain and under the acquisition-shift
suite. A false flip is a scan in the usual display taken for mirrored; a miss is a mirrored scan taken for
the usual display. Either one measures the anatomy the wrong way round, so they cost the same.

    python scripts/orientation_threshold.py --cv runs/sweep/mt_ema_blocks runs/sweep/mt_ema_blocks_s1

P(mirrored) of every scan is cached per fold (``foldK/p_mirrored.npz``, renewed with the checkpoint).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def fold_probs(fold: Path, k: int, cfg, records) -> dict[str, np.ndarray]:
    """P(mirrored) of fold ``k``'s held-out scans: ``usual`` and ``mirrored`` displays, plain + shifted."""
    from partus.data.shift import SHIFTS, apply_shift
    from partus.export import export_onnx
    from partus.predict import Predictor
    from partus.train.fit import split

    ckpt = fold / "checkpoints" / "last.ckpt"
    cache = fold / "p_mirrored.npz"
    if cache.is_file() and cache.stat().st_mtime > ckpt.stat().st_mtime:
        z = np.load(cache)
        return {n: z[n] for n in z.files}
    index = {r.name: i for i, r in enumerate(records)}
    _, val = split(records, k, 5, cfg.train.seed, cfg.train.split)
    images = [r.image for r in val]
    for name in SHIFTS:
        shifted = (apply_shift(name, r.image, r.points, seed=cfg.train.seed, index=index[r.name]) for r in val)
        images += [s.image for s in shifted if s.valid]
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(ckpt, Path(tmp) / "m.onnx")
        pred = Predictor(Path(tmp) / "m.onnx")
        probs = {"n_plain": np.array(len(val))}  # the first n_plain scans are the plain ones
        for display, ims in (("usual", images), ("mirrored", [np.ascontiguousarray(im[:, ::-1]) for im in images])):
            probs[display] = np.array([p.measurement.extras["orientation"]["p_mirrored"] for p in pred.predict(ims)])
    np.savez(cache, **probs)
    return probs


def main() -> None:
    sys.path.insert(0, str(REPO / "src"))
    from partus.config import load_config
    from partus.train.fit import load_records

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cv", type=Path, nargs="+", default=[REPO / "runs" / "sweep" / "mt_ema_blocks"])
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a = ap.parse_args()
    cfg = load_config(REPO / "configs" / "multitask.yaml")
    records = load_records(cfg)
    for cv in a.cv:
        probs = [fold_probs(cv / f"fold{k}", k, cfg, records) for k in a.folds]
        plain = {d: np.concatenate([p[d][: int(p["n_plain"])] for p in probs]) for d in ("usual", "mirrored")}
        shifted = {d: np.concatenate([p[d][int(p["n_plain"]) :] for p in probs]) for d in ("usual", "mirrored")}
        print(f"{cv.name}: {len(plain['usual'])} plain and {len(shifted['usual'])} shifted scans in each display")
        for t in THRESHOLDS:
            ff = [int((v["usual"] > t).sum()) for v in (plain, shifted)]
            miss = [int((v["mirrored"] <= t).sum()) for v in (plain, shifted)]
            print(
                f"  threshold {t:.2f}: false flips {ff[0]} plain + {ff[1]} shifted, misses {miss[0]} plain + "
                f"{miss[1]} shifted, total {sum(ff) + sum(miss)}"
            )


if __name__ == "__main__":
    main()
