"""Does the symphysis refiner (``refine:`` in a config, :mod:`partus.refine`) help, out of fold?

    python scripts/ps_refine.py [--cv runs/sweep/mt_ema_blocks] [--out runs/sweep/mt_ema_refine_blocks]
    python scripts/ps_refine.py --jitter 6        # the refiners alone, from annotated points moved by N(0, 6)
    python scripts/ship_model.py --calibrate-only --cv runs/sweep/mt_ema_refine_blocks   # shift-aware, verdict
    python scripts/ps_refine.py --all --out runs/multitask_ema/all   # one on all scans, to ship beside the network

``--all`` trains what ``partus train configs/multitask.yaml`` trains after the network when ``refine.epochs``
is set, alone (the shipped network already exists), into ``OUT/refiner.pt``.

For each blocks fold, a refiner is trained on the fold's training blocks (``partus.train.refine``, the
settings of ``configs/multitask.yaml``'s ``refine:`` section or its defaults with ``--set``), saved as
``OUT/foldK/refiner.pt`` beside a link to the fold network's checkpoints (``--cv``), so ``OUT`` is a CV
folder whose networks carry a refiner (a rerun keeps finished refiners trained with the same settings, and
rewrites their settings that only say how their points are used, e.g. ``blend``). Then each fold network runs on its
held-out plain scans through the shipped ONNX path (usual display) with and without its refiner, and the
script prints PS1/PS2 errors and AoP MAE (signed bias) by AoP band and writes ``OUT/refine_plain.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BANDS = ((0, 90), (90, 110), (110, 130), (130, 181), (0, 181))


def report(name: str, pred: np.ndarray, gt: np.ndarray) -> dict:
    from partus.geometry import angle_of_progression as aop

    a_gt = np.array([aop(*g) for g in gt])
    a = np.array([aop(*p) for p in pred])
    err = np.linalg.norm(pred - gt, axis=2).mean(0)
    out = {"ps1_px": float(err[0]), "ps2_px": float(err[1]), "fh1_px": float(err[2]), "bands": {}}
    cells = []
    for lo, hi in BANDS:
        s = (a_gt >= lo) & (a_gt < hi)
        if not s.any():
            continue
        e = a[s] - a_gt[s]
        out["bands"][f"{lo}-{hi}"] = {"n": int(s.sum()), "mae": float(np.abs(e).mean()), "bias": float(e.mean())}
        cells.append(f"{np.abs(e).mean():.2f} ({e.mean():+.1f})")
    print(f"{name:>9}: PS1 {err[0]:.2f} px, PS2 {err[1]:.2f} px | AoP by band: " + " / ".join(cells), flush=True)
    return out


def plain_points(cv: Path, k: int, val, refined: bool) -> np.ndarray:
    """The fold network's landmarks on its held-out scans (ONNX, usual display), with or without its refiner."""
    import shutil

    from partus.export import export_onnx
    from partus.predict import Predictor
    from partus.refine import refiner_path

    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "m.onnx"
        export_onnx(cv / f"fold{k}" / "checkpoints" / "last.ckpt", onnx)
        if not refined and refiner_path(onnx).is_file():
            refiner_path(onnx).unlink()
        res = Predictor(onnx).predict([r.image for r in val], orientation="standard")
        shutil.rmtree(tmp, ignore_errors=True)
    nan = np.full((3, 2), np.nan)
    return np.stack([nan if p.measurement.landmarks is None else p.measurement.landmarks.to_array() for p in res])


def jittered(net_path: Path, val, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Annotated points with PS1/PS2 moved by N(0, sigma), and the same after the refiner."""
    from partus.refine import Refiner
    from partus.train.refine import export_refiner

    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "r.refiner.onnx"
        export_refiner(net_path, onnx)
        ref = Refiner(onnx)
        gt = np.stack([r.points for r in val])
        c = gt.copy()
        c[:, :2] += np.random.default_rng(seed).normal(0, sigma, (len(val), 2, 2))
        return c, np.stack(ref([r.image for r in val], list(c)))


def main() -> None:
    import torch

    from partus.config import load_config
    from partus.train.fit import load_records, split
    from partus.train.refine import FILE, refiner_done, save_refiner, train_refiner

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cv", type=Path, default=REPO / "runs" / "sweep" / "mt_ema_blocks")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "sweep" / "mt_ema_refine_blocks")
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. refine.epochs=20")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jitter", type=float, default=0.0, help="px: judge the refiners alone (see above)")
    ap.add_argument("--all", action="store_true", help="train one refiner on all scans into OUT/refiner.pt")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(REPO / "configs" / "multitask.yaml", a.set)
    if not cfg.refine.epochs:
        ap.error("refine.epochs is 0: set it (--set refine.epochs=40)")
    records = load_records(cfg)
    if a.all:
        a.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        net = train_refiner(records, cfg.refine, cfg.data.augment, seed=cfg.train.seed, log=print)
        save_refiner(net, cfg.refine, a.out / FILE, cfg.name)
        print(f"{a.out / FILE}: {len(records)} scans, {(time.perf_counter() - t0) / 60:.1f} min")
        return
    rows: dict[str, list] = {"coarse": [], "refined": [], "gt": []}
    summary: dict = {"refine": cfg.refine.model_dump(), "folds": {}}
    for k in a.folds:
        train, val = split(records, k, cfg.train.folds, cfg.train.seed, cfg.train.split)
        if not (a.cv / f"fold{k}" / "fold.json").is_file() and not a.jitter:
            print(f"fold {k}: the network's training has not finished ({a.cv / f'fold{k}'}); skipped")
            continue
        d = a.out / f"fold{k}"
        d.mkdir(parents=True, exist_ok=True)
        for name in ("checkpoints", "fold.json"):  # the fold's network (last epoch), its marker of a finished run
            if not (d / name).is_symlink() and (a.cv / f"fold{k}" / name).exists():
                (d / name).symlink_to((a.cv / f"fold{k}" / name).resolve())
        if not refiner_done(d / FILE, cfg.refine, ""):  # kept if trained so (its use, e.g. blend, updated)
            print(f"fold {k}: training the refiner on {len(train)} scans", flush=True)
            t0 = time.perf_counter()
            net = train_refiner(train, cfg.refine, cfg.data.augment, seed=cfg.train.seed, log=print)
            save_refiner(net, cfg.refine, d / FILE, cfg.name)
            (d / "refiner.json").write_text(json.dumps({"minutes": (time.perf_counter() - t0) / 60}))
        gt = np.stack([r.points for r in val])
        if a.jitter:
            c, r1 = jittered(d / FILE, val, a.jitter, k)
        else:
            cache = d / "plain_points.npz"  # renewed with the refiner or the network
            deps = (d / FILE, d / "checkpoints" / "last.ckpt")
            if cache.is_file() and cache.stat().st_mtime > max(p.stat().st_mtime for p in deps):
                c, r1 = np.load(cache)["coarse"], np.load(cache)["refined"]
            else:
                c, r1 = plain_points(a.out, k, val, False), plain_points(a.out, k, val, True)
                np.savez(cache, coarse=c, refined=r1)
        ok = np.isfinite(c).all(axis=(1, 2)) & np.isfinite(r1).all(axis=(1, 2))
        print(f"fold {k} ({ok.sum()} of {len(val)} scans with points)")
        summary["folds"][k] = {"coarse": report("coarse", c[ok], gt[ok]), "refined": report("refined", r1[ok], gt[ok])}
        for key, v in (("coarse", c[ok]), ("refined", r1[ok]), ("gt", gt[ok])):
            rows[key].append(v)
    if len(a.folds) > 1:
        print("all folds")
        c, r1, gt = (np.concatenate(rows[key]) for key in ("coarse", "refined", "gt"))
        summary["all"] = {"coarse": report("coarse", c, gt), "refined": report("refined", r1, gt)}
    name = f"refine_jitter{a.jitter:g}.json" if a.jitter else "refine_plain.json"
    (a.out / name).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
