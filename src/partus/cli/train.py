"""``partus train``, ``partus cv`` (cross-validation) and ``partus export`` (checkpoint to ONNX)."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._common import EXIT_PARTIAL, _fmt, _usage, err, out

ConfigArg = Annotated[Path, typer.Argument(help="YAML config (see configs/).", exists=True, dir_okay=False)]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config value: key.sub=value.")]


class Split(StrEnum):
    """Cross-validation protocols (``train.split`` of the config)."""

    GROUPED = "grouped"
    BLOCKS = "blocks"


def _load(config: Path, overrides: list[str] | None):
    from ..config import load_config
    from ..errors import InputError

    try:
        return load_config(config, overrides or [])
    except InputError as exc:
        raise _usage(str(exc)) from None


def train(
    config: ConfigArg,
    fold: Annotated[int | None, typer.Option(help="Train on the other folds of this grouped fold.")] = None,
    devices: Annotated[
        int, typer.Option(min=1, help="Devices per node (GPUs, or CPU processes) for Lightning DDP.")
    ] = 1,
    num_nodes: Annotated[
        int, typer.Option(min=1, help="Machines training together (DDP; see README, 'Training on several machines').")
    ] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/NAME/all or foldK).")] = None,
    overrides: SetOpt = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Start afresh even if a checkpoint exists.")] = False,
) -> None:
    """Train a model (Lightning). Re-running the same command resumes an interrupted run exactly."""
    cfg = _load(config, overrides)
    from ..train.fit import fit

    out_dir = out_dir or Path("runs") / cfg.name / ("all" if fold is None else f"fold{fold}")
    scans = _unlabelled(cfg, fold) if cfg.semi.rounds > 0 else None  # checked before hours of training
    res = fit(cfg, out_dir, fold=fold, devices=devices, num_nodes=num_nodes, resume=not no_resume)
    if res.global_rank != 0:  # under DDP every process gets here; one reports
        return
    if scans is not None:
        res = _self_train(cfg, out_dir, res, scans, resume=not no_resume)
    shown = {k: round(v, 4) for k, v in res.metrics.items()}
    procs = f" on {res.world_size} processes (DDP)" if res.world_size > 1 else ""
    err.print(f"trained {cfg.model.name} for {res.epochs} epoch(s){procs} in {res.seconds / 60:.1f} min; {shown}")
    typer.echo(str(res.checkpoint))  # plain (no wrapping): scripts read it


def _unlabelled(cfg, fold: int | None):
    """The scans of ``semi.unlabelled`` for self-training rounds, or a usage error."""
    from ._common import _read_scans

    if fold is not None:
        raise _usage("self-training rounds (semi.rounds) train on all the data; for a held-out comparison see "
                     "scripts/label_fraction.py")  # fmt: skip
    if not cfg.semi.unlabelled:
        raise _usage("semi.rounds > 0 needs semi.unlabelled (folders or files of unlabelled scans)")
    return _read_scans([cfg.resolve(p) for p in cfg.semi.unlabelled], cfg.semi.frame_step, "semi.unlabelled")


def _self_train(cfg, out_dir: Path, res, scans, *, resume: bool):
    """``semi.rounds`` of pseudo-labelling the unlabelled scans after the supervised run (papers 1-2)."""
    from ..data.records import PSEUDO
    from ..train.semi import self_train

    err.print(f"self-training: {cfg.semi.rounds} round(s) on {len(scans)} unlabelled scans")
    annotated = [r for r in res.train_records if not r.name.startswith(PSEUDO)]  # semi.pseudo_root joins anew
    res, info = self_train(cfg, out_dir / "semi", annotated, scans, teacher=res.checkpoint, resume=resume)
    for r in info["rounds"]:
        err.print(f"round {r['round']}: kept {r['kept']} of {r['scans']} pseudo-labels, used {r['used']}")
    return res


def cv(
    config: ConfigArg,
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    devices: Annotated[int, typer.Option(help="Devices for Lightning DDP.")] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default runs/NAME/cv).")] = None,
    overrides: SetOpt = None,
    split: Annotated[
        Split | None, typer.Option(help="CV protocol; overrides train.split (default: the config's).")
    ] = None,
    no_shift: Annotated[
        bool, typer.Option("--no-shift", help="Skip the shift-aware evaluation (acquisition shifts, mirrored scans).")
    ] = False,
) -> None:
    """K-fold cross-validation (grouped or blocks, train.split): trains every fold, evaluates out-of-fold
    predictions, writes a report (summary.json, per-image CSV, plots) and cv_summary.json."""
    if split is not None:
        overrides = [*(overrides or []), f"train.split={split.value}"]
    cfg = _load(config, overrides)
    from ..train.cv import cross_validate

    out_dir = out_dir or Path("runs") / cfg.name / "cv"
    summary = cross_validate(cfg, out_dir, folds=folds, devices=devices, shift=not no_shift)
    s = summary["landmarks"]
    table = Table(title=f"{cfg.name}: {folds}-fold {cfg.train.split} CV on {summary['n_images']} images")
    for col in ("MRE px", "PS1", "PS2", "FH1", "SDR@5", "SDR@10", "AoP MAE", "AoP median", "missing"):
        table.add_column(col, justify="right")
    pl = s["per_landmark"]
    table.add_row(_fmt(s["mre"]), _fmt(pl["PS1"]), _fmt(pl["PS2"]), _fmt(pl["FH1"]),
                  _fmt(100 * s["sdr"]["5"], 1), _fmt(100 * s["sdr"]["10"], 1), _fmt(s["aop"]["mae"]),
                  _fmt(s["aop"]["median_ae"]), str(s["n_missing"]))  # fmt: skip
    out.print(table)
    if "shift_aware" in summary:
        _print_shift_aware(summary["shift_aware"], out_dir)
    err.print(f"report in {out_dir}/report, summary in {out_dir}/cv_summary.json ({summary['seconds'] / 60:.1f} min)")


def _dash(v) -> str:
    """A metric, or an en dash when there is none (None or not finite)."""
    return "–" if not isinstance(v, int | float) or not math.isfinite(v) else f"{v:.2f}"


def _print_shift_aware(shift: dict, out_dir: Path) -> None:
    table = Table(title="shift-aware CV")
    table.add_column("scans")
    for col in ("AoP MAE", "MRE px"):
        table.add_column(col, justify="right")
    for label, key in (("plain", "plain"), ("shift-suite mean", "shift_mean"), ("mirrored", "mirrored")):
        row = shift.get(key) or {}
        table.add_row(label, _dash(row.get("aop_mae")), _dash(row.get("mre")))
    out.print(table)
    out.print(f"full tables in {out_dir}/report/shift_aware.md", soft_wrap=True)  # a path: never folded


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Lightning checkpoint (.ckpt) from partus train.", exists=True)],
    out_file: Annotated[Path, typer.Option("--out", help="Destination .onnx file.")] = Path("model.onnx"),
    atol: Annotated[float, typer.Option(help="Largest allowed ONNX Runtime vs torch difference.")] = 1e-4,
) -> None:
    """Export a checkpoint to ONNX (self-describing metadata) after a numeric parity check."""
    from ..export import export_onnx

    try:
        meta = export_onnx(checkpoint, out_file, atol=atol)
    except RuntimeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_PARTIAL) from None
    err.print(
        f"{meta['model']} ({meta['kind']}) -> {out_file}; ONNX Runtime vs torch max |diff| {meta['max_abs_diff']:.2e}"
    )


def train_plane(
    checkpoint: Annotated[Path, typer.Argument(help="A trained multitask_net checkpoint (.ckpt).", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="The checkpoint with the standard_plane head (.ckpt).")],
    data: Annotated[
        Path | None, typer.Option(help="Labelled PSFHS-layout scans: positives, and the weak negatives made from them.")
    ] = None,
    frames: Annotated[
        Path | None, typer.Option(help="Real labelled frames named <video>_<frame>_<class>.png (IUGC 2024).")
    ] = None,
    hidden: Annotated[int, typer.Option(min=1, help="Width of the plane head's MLP.")] = 32,
    steps: Annotated[int, typer.Option(min=1, help="Full-batch optimiser steps.")] = 600,
) -> None:
    """Add a standard-plane head to a trained multitask network (its other outputs stay exactly as they
    were); export the result with 'partus export'."""
    from ..data.records import load_psfhs
    from ..errors import InputError
    from ..train.plane import iugc2024_plane_frames, train_plane_head

    if data is None and frames is None:
        raise _usage("give --data (labelled scans) and/or --frames (IUGC 2024 frames)")
    try:
        records = load_psfhs(data) if data is not None else []
        real = iugc2024_plane_frames(frames) if frames is not None else []
        with err.status("fitting the standard-plane head"):
            path, m = train_plane_head(checkpoint, out, records=records, frames=real, hidden=hidden, steps=steps)
    except (InputError, ValueError) as exc:
        raise _usage(str(exc)) from None
    err.print(f"standard-plane head on {m['n']} images ({m['positives']} standard): in-sample AUC {_fmt(m['auc'], 4)}, "
              f"accuracy {_fmt(m['accuracy'], 4)}; wrote {path} (partus export {path} --out model.onnx)")  # fmt: skip
