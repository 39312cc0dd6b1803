"""``partus measure`` (raw ultrasound: images and clips) and ``partus submission`` (an IUGC 2025 challenge
submission), with the bundled or given ONNX model(s). ``partus predict`` is in :mod:`.predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..conventions import DisplayOrientation, HSDMethod
from ._common import (
    EXIT_PARTIAL,
    ModelOpt,
    TtaOpt,
    _expand,
    _fmt,
    _predictor,
    _print_measurements,
    _usage,
    err,
)

OrientationOpt = Annotated[
    DisplayOrientation,
    typer.Option(
        help="auto: the model's orientation head decides per scan (mirrored displays are measured anatomically); "
        "standard = official rule as displayed; mirrored = treat every scan as a mirrored display."
    ),
]
HsdOpt = Annotated[HSDMethod, typer.Option("--hsd", help="HSD definition.")]
SpacingOpt = Annotated[
    tuple[float, float] | None, typer.Option(help="Pixel spacing SX SY in mm/px (default: from the file); HSD in mm.")
]


def measure(
    inputs: Annotated[list[Path], typer.Argument(help="Images, DICOM (single or multi-frame), .mha/NIfTI or videos.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for overlays, per-frame CSVs and plots.")] = Path(
        "partus-out"
    ),
    models: ModelOpt = None,
    tta: TtaOpt = False,
    orientation: OrientationOpt = DisplayOrientation.AUTO,
    hsd: HsdOpt = HSDMethod.NEAREST,
    spacing: SpacingOpt = None,
    step: Annotated[int, typer.Option(min=1, help="Clips: measure every STEP-th frame.")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Measure AoP and HSD on raw ultrasound: landmarks, verdict and an overlay PNG per image. A video or
    multi-frame DICOM is a clip: every frame classified (standard plane or not) and measured, AoP smoothed
    over the standard frames, and a summary (median and IQR), a per-frame CSV, a plot over time and the
    best frame's overlay written."""
    from ..batch import IMAGE_SUFFIXES, MultiFrameError, is_video, iter_file_predictions, unique_stems, write_overlay
    from ..clip import measure_clip
    from ..errors import InputError
    from ..io.datasets import VIDEO_EXTENSIONS

    files = _expand(inputs, IMAGE_SUFFIXES + VIDEO_EXTENSIONS)
    stems = unique_stems(files)
    predictor = _predictor(models, tta)
    opts = {"orientation": orientation, "hsd_method": hsd, "pixel_spacing": spacing}
    records, clips, failures = [], [], 0

    def clip(f: Path, data=None) -> None:
        nonlocal failures
        try:
            with err.status(f"measuring frames of {escape(f.name)}"):
                clips.append(measure_clip(predictor, f, out_dir, name=stems[f], data=data, step=step, **opts))
        except InputError as exc:
            failures += 1
            err.print(f"[red]skipped[/red] {escape(str(exc))}")

    for f in filter(is_video, files):
        clip(f)
    for path, pred in iter_file_predictions(predictor, [f for f in files if not is_video(f)], **opts):
        if isinstance(pred, MultiFrameError):  # a multi-frame DICOM or volume: a clip, already read
            clip(path, pred.data)
        elif isinstance(pred, InputError):
            failures += 1
            err.print(f"[red]skipped[/red] {escape(str(pred))}")
        else:
            write_overlay(out_dir / f"{stems[path]}_overlay.png", pred, title=path.name)
            records.append((path, pred.measurement))
    if records:
        _print_measurements(records, json_out)
    for c in clips:
        iqr = f"IQR {_fmt(c.aop_iqr[0])}-{_fmt(c.aop_iqr[1])}"
        aop = f"AoP median {_fmt(c.aop_median)} deg ({iqr}), best frame {c.best_frame}" if c.used_frames else "no AoP"
        err.print(f"{escape(Path(c.source).name)}: {c.standard_frames}/{c.frames} standard-plane frames, "
                  f"{c.message}; {aop}; wrote {c.summary}, {c.csv.name}, {c.plot.name}"
                  + (f", {c.overlay.name}" if c.overlay else ""))  # fmt: skip
    if records:
        err.print(f"overlays in {out_dir}/ (model {predictor.id})")
    if failures:
        err.print(f"[yellow]{failures} of {len(files)} file(s) could not be read[/yellow]")
        raise typer.Exit(EXIT_PARTIAL)


def submission(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the IUGC 2025 submission (model.py + model).")],
    models: ModelOpt = None,
    tta: TtaOpt = False,
) -> None:
    """Write an IUGC 2025 challenge submission: model.py (class model: load, predict(PIL image) ->
    [x1, y1, x2, y2, x3, y3]) around the bundled model, with partus' inference code vendored in."""
    from ..errors import InputError
    from ..submission import write_submission

    try:
        written = write_submission(out_dir, models=models or None, tta_flip=tta)
    except InputError as exc:
        raise _usage(str(exc)) from None
    err.print(f"wrote {len(written)} files to {out_dir}/ (entry point {out_dir / 'model.py'})")
