"""Run a plan of cross-validations and trainings in parallel processes, within a deadline, and collect
their shift-aware summaries: the model-selection sweep of the generalisation work.

    python scripts/sweep.py --out runs/sweep --parallel 12 --deadline 520 [--only NAME ...]
    python scripts/sweep.py --list

Each plan entry is a config plus ``--set`` overrides, run as ``partus cv`` (with the shift-aware
evaluation) or ``partus train`` (all data). Finished folds are kept (``foldK/fold.json``), so re-running
the same command continues an interrupted sweep; ``NAME@K`` runs fold K of an entry alone (folds in
parallel). ``sweep.json`` gathers the summaries; ``benchmarks/shift_sweep.py`` pools finished folds of
unfinished jobs, and ``scripts/ship_model.py`` runs the shipped model's folds through the ONNX path.
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
#: The multitask entries made before weight averaging became the default keep their meaning.
RAW = ["train.ema=0"]
#: name -> (mode, config, overrides); in priority order.
PLAN: dict[str, tuple[str, str, list[str]]] = {
    "mt_strong_blocks": ("cv", MT, RAW),  # configs/multitask.yaml carries the strong augmentation
    "mt_blocks": ("cv", MT, [*RAW, "data.augment={}", "data.label_noise=0"]),
    "mt_strong_balanced_blocks": ("cv", MT, [*RAW, "train.balance_aop=true", "train.epochs=40"]),
    "mobilenet_seg_imagenet_blocks": ("cv", "configs/mobilenet_seg_imagenet.yaml", ["train.split=blocks"]),
    "mobilenet_seg_imagenet_grouped": ("cv", "configs/mobilenet_seg_imagenet.yaml", ["train.split=grouped"]),
    "seg_unet_blocks": ("cv", "configs/seg_unet.yaml", ["train.split=blocks"]),
    "seg_unet_grouped": ("cv", "configs/seg_unet.yaml", ["train.split=grouped"]),
    "heatmap_unet_blocks": ("cv", "configs/heatmap_unet.yaml", ["train.split=blocks"]),
    "heatmap_unet_grouped": ("cv", "configs/heatmap_unet.yaml", ["train.split=grouped"]),
    "dsnt_blocks": ("cv", "configs/dsnt.yaml", ["train.split=blocks"]),
    "dsnt_grouped": ("cv", "configs/dsnt.yaml", ["train.split=grouped"]),
    "mt_strong_grouped": ("cv", MT, [*RAW, "train.split=grouped"]),
    "mt_strong_f16_blocks": ("cv", MT, [*RAW, "model.kwargs.features=16"]),
    "mt_nofan_blocks": ("cv", MT, [*RAW, "data.augment.p_fan=0"]),  # the default without another scanner's screen
    "mt_e60_blocks": ("cv", MT, [*RAW, "train.epochs=60"]),  # longer schedule (the CPU budget allows ~6x)
    "mt_e60_ema_blocks": ("cv", MT, ["train.epochs=60", "train.ema=0.998"]),  # + weight EMA (~7 epochs)
    "mt_ema_blocks": ("cv", MT, []),  # the default since 2026-11-30: weight EMA (train.ema=0.998)
    "mt_ema_blocks_s1": ("cv", MT, ["train.seed=1"]),  # second draws: how much of block 4 is draw noise
    "mt_strong_blocks_s1": ("cv", MT, [*RAW, "train.seed=1"]),
    "mt_ema_turn_blocks": ("cv", MT, ["data.augment.p_turn=0.5"]),  # + symphysis turned about PS1 (data.turn)
    "mt_ema_turn_strong_blocks": ("cv", MT, ["data.augment.p_turn=1.0", "data.augment.turn_deg=25"]),  # dose check
    "mt_ema_r192_blocks": ("cv", MT, ["data.input_size=192"]),  # the network at 192 px instead of 128
    "mt_ema_bal_blocks": ("cv", MT, ["train.balance_aop=true"]),  # AoP bands weigh equally in sampling
    "mt_ema_aop_blocks": ("cv", MT, ["train.ema=0.998", "loss.aop_weight=0.25"]),  # + AoP loss on the DSNT head
    "transunet_seg_blocks": ("cv", "configs/transunet_seg.yaml", ["train.split=blocks"]),  # paper 1, issue 10
    "transunet_seg_blocks_s1": ("cv", "configs/transunet_seg.yaml", ["train.split=blocks", "train.seed=1"]),
    "transunet_seg_blocks_s2": ("cv", "configs/transunet_seg.yaml", ["train.split=blocks", "train.seed=2"]),
}


def run_job(
    name: str, out: Path, data: str | None, encoder: str | None, sets_extra: list[str], train_only: bool = False
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
        if not train_only:  # else judged later, e.g. by scripts/ema_pair.py on the last checkpoint
            _fold_shift(res, job / f"fold{k}", [index[r.name] for r in res.val_records], cfg)
        return
    summary = cross_validate(cfg, job, progress=False)
    (job / "done.json").write_text(json.dumps(summary, default=str))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "sweep")
    ap.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--deadline", type=float, default=3600.0, help="seconds; unfinished jobs are stopped")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--data", default=None, help="psfhs-dev folder (default: the configs' ../shared path)")
    ap.add_argument("--encoder", default=None, help="torchvision MobileNetV2 .pth instead of the weights package")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every job (key=value)")
    ap.add_argument("--no-onnx", action="store_true", help=argparse.SUPPRESS)  # accepted for old commands
    ap.add_argument("--train-only", action="store_true", help="NAME@K jobs: train the fold, skip its shift evaluation")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for k, (mode, cfg, sets) in PLAN.items():
            print(f"{k:34s} {mode:5s} {cfg} {' '.join(sets)}")
        return
    a.out.mkdir(parents=True, exist_ok=True)
    if a.job:
        run_job(a.job, a.out, a.data, a.encoder, a.set, a.train_only)
        return
    names = [n for n in PLAN if a.only is None] if a.only is None else list(a.only)
    start, running, pending = time.time(), {}, list(names)
    extra = [*(["--data", a.data] if a.data else []), *(["--encoder", a.encoder] if a.encoder else []),
             *(["--set", *a.set] if a.set else []), *(["--train-only"] if a.train_only else [])]  # fmt: skip
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
