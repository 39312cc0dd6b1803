"""``partus measure`` (raw ultrasound: images and clips), ``partus predict`` (a folder to a CSV) and
``partus submission`` (an IUGC 2025 challenge submission), all with the bundled or given ONNX model(s)."""

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
    _progress,
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
    """Measure AoP and HSD on raw ultrasound: landmarks, verdict and an overlay PNG per image; for a
    video or multi-frame DICOM a per-frame CSV and a plot of AoP over time."""
    from ..batch import (
        IMAGE_SUFFIXES,
        MultiFrameError,
        is_video,
        iter_file_predictions,
        measure_clip,
        unique_stems,
        write_overlay,
    )
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
        err.print(
            f"{escape(Path(c.source).name)}: {c.measurable}/{c.frames} frames measurable, "
            f"AoP median {_fmt(c.aop_median)} deg "
            f"(range {_fmt(c.aop_range[0])}-{_fmt(c.aop_range[1])}); wrote {c.csv} and {c.plot}"
        )
    if records:
        err.print(f"overlays in {out_dir}/ (model {predictor.id})")
    if failures:
        err.print(f"[yellow]{failures} of {len(files)} file(s) could not be read[/yellow]")
        raise typer.Exit(EXIT_PARTIAL)


def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Folders (or files) of images: PNG/JPEG/BMP/TIFF, .mha, DICOM.")],
    csv_out: Annotated[Path, typer.Option("--out", help="Predictions CSV (IUGC 2025 columns + AOP, HSD, quality).")],
    overlays: Annotated[Path | None, typer.Option(help="Write an overlay PNG per image into this folder.")] = None,
    masks: Annotated[
        Path | None, typer.Option(help="Write the predicted PS/FH mask (0/1/2 PNG) into this folder.")
    ] = None,
    models: ModelOpt = None,
    tta: TtaOpt = False,
    orientation: OrientationOpt = DisplayOrientation.AUTO,
    hsd: HsdOpt = HSDMethod.NEAREST,
    spacing: SpacingOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per ONNX Runtime call.")] = 16,
    json_out: Annotated[bool, typer.Option("--json", help="Also print every result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Predict a folder: one CSV row per image (unreadable files are reported, listed as not measurable,
    and skipped; they never abort the run)."""
    from ..batch import IMAGE_SUFFIXES, iter_file_predictions, unique_stems, write_mask_file, write_overlay
    from ..errors import InputError
    from ..io import write_predictions_csv
    from ..measurement import Measurement

    files = _expand(inputs, IMAGE_SUFFIXES)
    stems = unique_stems(files)
    predictor = _predictor(models, tta)
    if masks is not None and not predictor.has_masks:
        raise _usage("--masks needs a segmentation model; the given model(s) predict landmarks only")
    opts = {"orientation": orientation, "hsd_method": hsd, "pixel_spacing": spacing}
    rows, records, failures = [], [], 0
    names: set[str] = set()
    stream = iter_file_predictions(predictor, files, batch_size=batch_size, **opts)
    for path, pred in _progress(stream, "Measuring", quiet, total=len(files)):
        name = path.name if path.name not in names else str(path)  # same name in two folders
        names.add(name)
        if isinstance(pred, InputError):
            failures += 1
            err.print(f"[red]skipped[/red] {escape(str(pred))}")
            rows.append((name, Measurement.not_measurable(f"could not read the file: {pred.problem}")))
            continue
        m = pred.measurement
        rows.append((name, m))
        records.append((path, m))
        if overlays is not None:
            write_overlay(overlays / f"{stems[path]}_overlay.png", pred, title=path.name)
        if masks is not None:
            write_mask_file(masks, stems[path], pred)
    write_predictions_csv(csv_out, rows)
    if json_out:
        _print_measurements(records, True)
    if not quiet:
        ok = sum(1 for _, m in rows if m.ok)
        err.print(f"{ok}/{len(rows)} measurable; wrote {csv_out} (model {predictor.id})")
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
