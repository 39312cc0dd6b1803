"""Does test-time augmentation of the symphysis refiner help? (An experiment; not used by partus.)

    python scripts/refine_tta.py [--cv runs/sweep/mt_ema_refine_blocks] [--folds 0 1 2 4]

Each fold network of ``--cv`` (with its refiner beside it, ``scripts/ps_refine.py``) measures its held-out
plain scans in the usual display through :class:`partus.predict.Predictor`, its refiner replaced by one that
cuts several windows per scan (shifted, scaled, turned) in one ONNX Runtime call and averages (or takes the
median of) the refined points, optionally twice (re-centred on the first result). Prints PS1/PS2 error and
AoP MAE (signed bias) by band per variant, pooled over the folds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from ps_refine import REPO, report

#: name -> windows (dx, dy working px, scale, turn deg)
VARIANTS = {
    "base": [(0, 0, 1.0, 0)],
    "shift4": [(0, 0, 1.0, 0), (4, 0, 1.0, 0), (-4, 0, 1.0, 0), (0, 4, 1.0, 0), (0, -4, 1.0, 0)],
    "shift8": [(0, 0, 1.0, 0), (8, 0, 1.0, 0), (-8, 0, 1.0, 0), (0, 8, 1.0, 0), (0, -8, 1.0, 0)],
    "scale": [(0, 0, 1.0, 0), (0, 0, 0.9, 0), (0, 0, 1.1, 0)],
    "turn": [(0, 0, 1.0, 0), (0, 0, 1.0, 8), (0, 0, 1.0, -8)],
    "mix": [(0, 0, 1.0, 0), (4, 0, 0.9, 5), (-4, 0, 1.1, -5), (0, 4, 1.1, 5), (0, -4, 0.9, -5)],
}
RUNS = ["base", "shift4", "shift8", "scale", "turn", "mix", "base@2", "mix@2", "mix@median"]


class _Refiner:
    """What :class:`partus.predict.Predictor` needs of a refiner: ``refine`` (points, confidences: none here)."""

    def __init__(self, fn):
        self.fn = fn

    def refine(self, grays, points):
        out = self.fn(grays, points)
        return out, [np.full(3, np.nan) for _ in out]

    def __call__(self, grays, points):
        return self.fn(grays, points)


def tta_refiner(base, windows, passes: int, median: bool) -> _Refiner:
    """A refiner like ``base`` (a :class:`partus.refine.Refiner`, its ``blend`` applied once at the end) that
    refines from several windows."""
    from partus.decode import to_grid_coords
    from partus.members import activate
    from partus.preprocess import resize_image
    from partus.refine import crop_window, cut

    def refine(grays, points):
        first = [np.array(p, float) for p in points]
        out = [p.copy() for p in first]
        for _ in range(passes):
            todo = [i for i, p in enumerate(out) if np.isfinite(p[:2]).all()]
            jobs, crops = [], []
            for i in todo:
                work = resize_image(grays[i], base.work)
                c = to_grid_coords(out[i][:2], grays[i].shape, (base.work,) * 2).mean(0)
                for dx, dy, s, a in windows:
                    m = crop_window(c + np.array([dx, dy]), base.crop, s, a)
                    jobs.append((i, m))
                    crops.append(cut(work, m, base.crop))
            if not jobs:
                break
            x = (np.stack(crops).astype(np.float32) / 255.0)[:, None]
            maps = activate(base.session.run(None, {"image": x})[0].astype(np.float32), "dsnt")
            found: dict[int, list] = {}
            for (i, m), mp in zip(jobs, maps, strict=True):
                found.setdefault(i, []).append(base.locate(mp, m, grays[i].shape))
            for i, v in found.items():
                out[i][base.refines] = (np.median(v, 0) if median else np.mean(v, 0))[base.refines]
        w = np.array(base.blend)[:, None]
        for o, f in zip(out, first, strict=True):
            o[base.refines] = w * o[base.refines] + (1 - w) * f[base.refines]
        return out

    return _Refiner(refine)


def main() -> None:
    from partus.config import load_config
    from partus.export import export_onnx
    from partus.predict import Predictor
    from partus.train.fit import load_records, split

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cv", type=Path, default=REPO / "runs" / "sweep" / "mt_ema_refine_blocks")
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 4])
    a = ap.parse_args()
    cfg = load_config(REPO / "configs" / "multitask.yaml")
    records = load_records(cfg)
    pooled: dict[str, tuple[list, list]] = {name: ([], []) for name in RUNS}
    for k in a.folds:
        _, val = split(records, k, cfg.train.folds, cfg.train.seed, cfg.train.split)
        gt = np.stack([r.points for r in val])
        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(a.cv / f"fold{k}" / "checkpoints" / "last.ckpt", Path(tmp) / "m.onnx")
            p = Predictor(Path(tmp) / "m.onnx")
            base = p.models[0].refiner
            if base is None:
                raise SystemExit(f"fold {k}: no refiner beside the network (run scripts/ps_refine.py)")
            if base.centre != "midpoint":
                raise SystemExit(f"fold {k}: the windows here sit on the symphysis midpoint, not {base.centre!r}")
            for name in RUNS:
                v, _, opt = name.partition("@")
                p.models[0].refiner = tta_refiner(base, VARIANTS[v], 2 if opt == "2" else 1, opt == "median")
                res = p.predict([r.image for r in val], orientation="standard")
                pts = np.stack([np.full((3, 2), np.nan) if q.measurement.landmarks is None
                                else q.measurement.landmarks.to_array() for q in res])  # fmt: skip
                pooled[name][0].append(pts)
                pooled[name][1].append(gt)
    print(f"folds {a.folds}")
    for name, (pts, gt) in pooled.items():
        pts, gt = np.concatenate(pts), np.concatenate(gt)
        ok = np.isfinite(pts).all(axis=(1, 2))
        report(name, pts[ok], gt[ok])


if __name__ == "__main__":
    main()
