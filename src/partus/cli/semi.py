"""``partus pretrain`` (self-supervised encoder), ``partus pseudo-label`` and ``partus adapt`` (a new site
from its unlabelled scans)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ._common import ModelOpt, _read_scans, _usage, err, out

ScansArg = Annotated[
    list[Path], typer.Argument(help="Unlabelled scans: images, DICOM/MHA, videos, or folders of them.")
]
FrameStepOpt = Annotated[int, typer.Option(min=1, help="Use every n-th frame of videos and multi-frame files.")]


class Method(StrEnum):
    MOCO = "moco"
    MIM = "mim"


def pretrain(
    inputs: ScansArg,
    out_file: Annotated[Path, typer.Option("--out", help="Encoder weights to write (.pth).")],
    method: Annotated[
        Method, typer.Option(help="moco (MoCo v2, contrastive) or mim (masked image modelling).")
    ] = Method.MOCO,
    minutes: Annotated[float, typer.Option(min=0.1, help="Wall-clock budget.")] = 20.0,
    epochs: Annotated[int, typer.Option(min=1, help="Upper bound on epochs.")] = 100,
    init: Annotated[
        str,
        typer.Option(
            help="Start from: imagenet, shipped (the bundled network's encoder), none, "
            "or a torchvision MobileNetV2 .pth."
        ),
    ] = "shipped",
    batch_size: Annotated[int, typer.Option(min=4)] = 32,
    frame_step: FrameStepOpt = 5,
) -> None:
    """Self-supervised pretraining of the MobileNetV2 encoder on unlabelled scans. Frames of one clip are
    positives for MoCo (sequence mining). Use the result with: partus train CONFIG --set
    model.encoder_weights=OUT. A killed run continues where it stopped when the command is repeated."""
    from ..errors import InputError
    from ..train.ssl import PretrainConfig
    from ..train.ssl import pretrain as run

    if init not in ("shipped", "imagenet", "none") and not Path(init).is_file():
        raise _usage(f"--init {init}: not imagenet, shipped or none, and no such file")
    scans = _read_scans(inputs, frame_step)
    start = None if init == "none" else init
    if init == "shipped":
        start = str(_shipped_encoder(out_file))
    cfg = PretrainConfig(method=method.value, minutes=minutes, epochs=epochs, init=start, batch_size=batch_size)
    from rich.progress import Progress

    try:
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task(f"{method.value} on {len(scans)} scans", total=1.0)
            res = run([s.image for s in scans], out_file, groups=[s.group for s in scans], config=cfg,
                      on_epoch=lambda e, loss, p: bar.update(task, completed=p,
                                                             description=f"epoch {e} loss {loss:.3f}"))  # fmt: skip
    except (InputError, ValueError) as exc:
        raise _usage(str(exc)) from None
    first, last = (res.losses[0], res.losses[-1]) if res.losses else (float("nan"), float("nan"))
    err.print(f"{method.value}: {res.epochs} epochs, {res.steps} steps in {res.seconds / 60:.1f} min; loss "
              f"{first:.3f} -> {last:.3f}; wrote {out_file} (use: --set model.encoder_weights={out_file})")  # fmt: skip


def _shipped_encoder(next_to: Path) -> Path:
    """The bundled network's encoder, where the run starts from, as ``<out>.init.pth`` beside the output."""
    from ..train.adapt import load_trainable, save_encoder

    next_to.parent.mkdir(parents=True, exist_ok=True)
    return save_encoder(load_trainable()[1], next_to.with_name(next_to.stem + ".init.pth"))


def pseudo_label(
    inputs: ScansArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the labels (psfhs-dev layout).")],
    models: ModelOpt = None,
    max_aop_spread: Annotated[float, typer.Option(help="Largest AoP disagreement of the heads (deg).")] = 6.0,
    max_shift: Annotated[
        float, typer.Option(help="Largest landmark move on a mirrored, zoomed copy (share of the shorter side).")
    ] = 0.03,
    frame_step: FrameStepOpt = 5,
) -> None:
    """Label unlabelled scans with a model and keep only the labels that pass every check (the model's
    verdict, agreement of its heads, consistency on a mirrored, zoomed copy, anatomy of the masks). Writes the kept
    labels in the psfhs-dev layout (train on them with --set semi.pseudo_root=OUT) and every decision with
    its reason to OUT/pseudo_labels.csv."""
    from rich.progress import Progress

    from ..errors import InputError
    from ..pseudo import PseudoFilter, write_pseudo_labels
    from ..pseudo import pseudo_label as run
    from ._common import _predictor

    scans = _read_scans(inputs, frame_step)
    predictor = _predictor(models, False)
    rules = PseudoFilter(max_aop_spread=max_aop_spread, max_shift_px=max_shift)
    try:
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("pseudo-labelling", total=len(scans))
            labels = run(predictor, scans, rules=rules, on_batch=lambda n: bar.advance(task, n))
        counts = write_pseudo_labels(out_dir, labels)
    except InputError as exc:
        raise _usage(str(exc)) from None
    rejected = ", ".join(f"{k} {v}" for k, v in counts["rejected"].items()) or "none"
    out.print(f"kept {counts['kept']} of {counts['scans']} scans (rejected: {rejected}); wrote {out_dir}")


def adapt(
    inputs: ScansArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the adapted model and its report.")],
    epochs: Annotated[
        float, typer.Option(min=0, help="Fine-tuning passes over the kept pseudo-labels (0: no fine-tuning).")
    ] = 0.0,
    steps: Annotated[int | None, typer.Option(min=1, help="Fine-tuning optimiser steps (instead of --epochs).")] = None,
    pretrain_minutes: Annotated[
        float, typer.Option(min=0, help="MoCo pretraining on the scans first (0: none; needs --epochs or --steps).")
    ] = 0.0,
    bn_stats: Annotated[
        bool, typer.Option(help="Re-estimate the BatchNorm statistics on the scans (AdaBN; no labels used).")
    ] = True,
    tent_epochs: Annotated[
        int, typer.Option(min=0, help="Entropy-minimisation passes fitting the BatchNorm scales first (Tent; 0: off).")
    ] = 2,
    min_kept: Annotated[int, typer.Option(min=1, help="Fewest kept pseudo-labels to go on with.")] = 20,
    frame_step: FrameStepOpt = 5,
) -> None:
    """Adapt the bundled network to a new site from unlabelled scans: check them with pseudo-labels, fit
    its BatchNorm layers to them (entropy minimisation, then their statistics; optionally fine-tune on the
    kept labels first: --epochs), refit its standard-plane head, export OUT/multitask.onnx (use: partus
    predict --model OUT) and write a before/after report (OUT/adapt_report.md). Refuses scans too few of
    which pass the pseudo-label checks."""
    from ..errors import InputError
    from ..train.adapt import AdaptConfig
    from ..train.adapt import adapt as run

    scans = _read_scans(inputs, frame_step)
    try:
        report = run(scans, out_dir, config=AdaptConfig(epochs=epochs, steps=steps, pretrain_minutes=pretrain_minutes,
                                                        bn_stats=bn_stats, min_kept=min_kept,
                                                        tent_epochs=tent_epochs),
                     step=lambda msg: err.print(f"[bold]>[/bold] {msg}"))  # fmt: skip
    except (InputError, ValueError) as exc:
        raise _usage(str(exc)) from None
    b, a = report["before"], report["after"]
    out.print(f"adapted in {report['minutes']} min on {report['pseudo_labels']['kept']} pseudo-labels; measured "
              f"{b['measured']} -> {a['measured']} of {report['scans']}; wrote {report['model']} and "
              f"{Path(out_dir) / 'adapt_report.md'}")  # fmt: skip
