"""Run a plan of cross-validations and trainings in parallel processes, within a deadline, and collect
their shift-aware summaries: the model-selection sweep of the generalisation work.

    python scripts/sweep.py --out runs/sweep --parallel 12 --deadline 520 [--only NAME ...]
    python scripts/sweep.py --list

Each plan entry is a config plus ``--set`` overrides, run as ``partus cv`` (with the shift-aware
evaluation) or ``partus train`` (all data). Finished folds are kept (``foldK/fold.json``), so re-running
the same command continues an interrupted sweep. For multitask entries every fold's checkpoint is also
exported to ONNX and run through the shipped inference path (:class:`partus.predict.Predictor`) on the
plain, shifted and mirrored validation scans, with the verdict floors off, so that the floors can be
calibrated from the stored confidences (``onnx_eval.json``). ``sweep.json`` gathers everything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.val_every=3", "train.threads=1"]
MT = "configs/multitask.yaml"
STRONG = ["data.augment.rotate_deg=25", "data.augment.scale=0.25", "data.augment.translate=0.1",
          "data.augment.p_blur=0.3", "data.augment.p_speckle=0.5", "data.augment.speckle=0.3",
          "data.augment.gamma=[60,150]", "data.augment.p_gamma=0.5", "data.label_noise=1.0"]  # fmt: skip

#: name -> (mode, config, overrides); in priority order.
PLAN: dict[str, tuple[str, str, list[str]]] = {
    "mt_strong_blocks": ("cv", MT, []),  # configs/multitask.yaml carries the strong augmentation
    "mt_blocks": ("cv", MT, ["data.augment={}", "data.label_noise=0"]),
    "mt_strong_balanced_blocks": ("cv", MT, [*STRONG, "train.balance_aop=true", "train.epochs=40"]),
    "mobilenet_seg_imagenet_blocks": ("cv", "configs/mobilenet_seg_imagenet.yaml", ["train.split=blocks"]),
    "mobilenet_seg_imagenet_grouped": ("cv", "configs/mobilenet_seg_imagenet.yaml", ["train.split=grouped"]),
    "seg_unet_blocks": ("cv", "configs/seg_unet.yaml", ["train.split=blocks"]),
    "seg_unet_grouped": ("cv", "configs/seg_unet.yaml", ["train.split=grouped"]),
    "heatmap_unet_blocks": ("cv", "configs/heatmap_unet.yaml", ["train.split=blocks"]),
    "heatmap_unet_grouped": ("cv", "configs/heatmap_unet.yaml", ["train.split=grouped"]),
    "dsnt_blocks": ("cv", "configs/dsnt.yaml", ["train.split=blocks"]),
    "dsnt_grouped": ("cv", "configs/dsnt.yaml", ["train.split=grouped"]),
    "mt_strong_grouped": ("cv", MT, [*STRONG, "train.split=grouped"]),
    "mt_strong_f16_blocks": ("cv", MT, [*STRONG, "model.kwargs.features=16"]),
}


def run_job(
    name: str, out: Path, data: str | None, encoder: str | None, sets_extra: list[str], with_onnx: bool = True
) -> None:
    """One plan entry, in this process."""
    from partus.config import load_config

    name, _, fold = name.partition("@")  # NAME@K: only fold K of a cv entry (folds run in parallel)
    mode, config, sets = PLAN[name]
    extra = [*([f"data.root={data}"] if data else []), *sets_extra]
    cfg = load_config(ROOT / config, [*sets, *FAST, *extra])
    if encoder and cfg.model.encoder_weights == "imagenet":
        cfg = load_config(ROOT / config, [*sets, *FAST, *extra, f"model.encoder_weights={encoder}"])
    cfg = cfg.model_copy(update={"name": name})
    job = out / name
    if mode == "train":
        from partus.train.fit import fit

        res = fit(cfg, job / "all", progress=False)
        (job / "done.json").write_text(json.dumps({"checkpoint": str(res.checkpoint), "seconds": res.seconds}))
        return
    from partus.train.cv import _fold, _fold_shift, cross_validate

    if fold:
        from partus.train.fit import load_records

        k = int(fold)
        records = load_records(cfg)
        index = {r.name: i for i, r in enumerate(records)}
        res = _fold(cfg, job / f"fold{k}", k, records, devices=1, progress=False)
        _fold_shift(res, job / f"fold{k}", [index[r.name] for r in res.val_records], cfg)
        if cfg.model.name == "multitask_net" and with_onnx:
            onnx_eval(cfg, job, folds=[k])
        return
    summary = cross_validate(cfg, job, progress=False)
    if cfg.model.name == "multitask_net" and with_onnx:
        summary["onnx_eval"] = onnx_eval(cfg, job)
    (job / "done.json").write_text(json.dumps(summary, default=str))


def onnx_eval(cfg, job: Path, folds: list[int] | None = None) -> dict:
    """Every fold through the shipped ONNX path with verdict floors off; per-image raw fields saved."""
    from dataclasses import replace

    import numpy as np

    from partus.data.shift import SHIFTS, apply_shift, mirror
    from partus.export import export_onnx
    from partus.predict import Predictor
    from partus.quality import DEFAULT_LIMITS
    from partus.train.fit import load_records, split

    open_limits = replace(DEFAULT_LIMITS, min_confidence=0.0, min_peak=0.0, max_aop_spread=1e9)
    records = load_records(cfg)
    index = {r.name: i for i, r in enumerate(records)}
    rows = []
    for k in range(cfg.train.folds) if folds is None else folds:
        marker = json.loads((job / f"fold{k}" / "fold.json").read_text())
        onnx = job / f"fold{k}" / "model.onnx"
        export_onnx(marker["checkpoint"], onnx)
        pred = Predictor(onnx, threads=1, limits=open_limits)
        _, val = split(records, k, cfg.train.folds, cfg.train.seed, cfg.train.split)
        variants = {"plain": [(r.image, r.points) for r in val]}
        for s in SHIFTS:
            shifted = [apply_shift(s, r.image, r.points, seed=cfg.train.seed, index=index[r.name]) for r in val]
            variants[s] = [(x.image, x.points) if x.valid else None for x in shifted]
        variants["mirrored"] = [(m.image, m.points) for m in (mirror(r.image, r.points) for r in val)]
        for v, items in variants.items():
            for r, item in zip(val, items, strict=True):
                if item is None:
                    continue
                m = pred.measure(item[0])
                rows.append({"fold": k, "name": r.name, "variant": v, "gt": np.asarray(item[1]).tolist(),
                             "pred": None if m.landmarks is None else m.landmarks.to_array().tolist(),
                             "status": str(m.status), "reason": m.reason, "aop": m.aop,
                             "confidence": m.extras.get("member_confidence"), "spread": m.extras.get("aop_spread_deg"),
                             "orientation": m.extras.get("orientation")})  # fmt: skip
    name = "onnx_eval.json" if folds is None else f"onnx_eval_{'_'.join(map(str, folds))}.json"
    (job / name).write_text(json.dumps(rows))
    return {"rows": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "sweep")
    ap.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--deadline", type=float, default=3600.0, help="seconds; unfinished jobs are stopped")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--data", default=None, help="psfhs-dev folder (default: the configs' ../shared path)")
    ap.add_argument("--encoder", default=None, help="torchvision MobileNetV2 .pth instead of the weights package")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every job (key=value)")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX-path evaluation of multitask folds")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for k, (mode, cfg, sets) in PLAN.items():
            print(f"{k:34s} {mode:5s} {cfg} {' '.join(sets)}")
        return
    a.out.mkdir(parents=True, exist_ok=True)
    if a.job:
        run_job(a.job, a.out, a.data, a.encoder, a.set, with_onnx=not a.no_onnx)
        return
    names = [n for n in PLAN if a.only is None] if a.only is None else list(a.only)
    start, running, pending = time.time(), {}, list(names)
    extra = [*(["--data", a.data] if a.data else []), *(["--encoder", a.encoder] if a.encoder else []),
             *(["--set", *a.set] if a.set else []), *(["--no-onnx"] if a.no_onnx else [])]  # fmt: skip
    while (pending or running) and time.time() - start < a.deadline:
        while pending and len(running) < a.parallel:
            n = pending.pop(0)
            log = open(a.out / f"{n}.log", "w")  # noqa: SIM115 - closed when the job ends
            cmd = [sys.executable, __file__, "--job", n, "--out", str(a.out), *extra]
            running[n] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, time.time())
            print(f"[{time.time() - start:5.0f}s] start {n}", flush=True)
        for n, (proc, log, t0) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                print(f"[{time.time() - start:5.0f}s] {n}: exit {proc.returncode} after {time.time() - t0:.0f}s",
                      flush=True)  # fmt: skip
                del running[n]
        time.sleep(2)
    for n, (proc, log, _) in running.items():
        proc.kill()
        log.close()
        print(f"stopped {n} at the deadline", flush=True)
    collect(a.out, names)


def collect(out: Path, names: list[str]) -> None:
    """``sweep.json``: per job its summary (finished) or its finished folds' shift files (partial)."""
    result = {}
    for n in dict.fromkeys(n.partition("@")[0] for n in names):
        done = out / n / "done.json"
        if done.is_file():
            result[n] = json.loads(done.read_text())
        else:
            folds = sorted(p.parent.name for p in (out / n).glob("fold*/shift.npz"))
            result[n] = {"finished": False, "folds_done": folds}
    (out / "sweep.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out / 'sweep.json'}")


if __name__ == "__main__":
    main()
