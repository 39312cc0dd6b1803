"""The ``partus`` command line (typer + rich). A thin shell: parse, call the library, format.

Exit codes: 0 success; 1 some inputs could not be read (the others were processed); 2 usage error.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .conventions import HSDMethod, LabelScheme, Orientation

app = typer.Typer(
    name="partus",
    help="Labour progress on intrapartum ultrasound: landmarks, Angle of Progression (AoP), HSD.",
    no_args_is_help=True,
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Labour progress on intrapartum ultrasound: landmarks, Angle of Progression (AoP), HSD.

    A research tool, not a medical device. Conventions: docs/conventions.md.
    """
    if version:
        from . import __version__

        out.print(f"partus {__version__}")
        raise typer.Exit(EXIT_OK)


def _usage(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(EXIT_USAGE)


def _expand(paths: Iterable[Path], suffixes: tuple[str, ...]) -> list[Path]:
    """Files as given, and the matching files inside given folders (sorted)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(suffixes))
        elif p.exists():
            files.append(p)
        else:
            raise _usage(f"{p}: no such file or folder")
    if not files:
        raise _usage(f"no input files found (looked for {', '.join(suffixes)})")
    return files


def _find_image(images: Path | None, mask: Path) -> Path | None:
    if images is None:
        return None
    from .io import file_stem

    hits = sorted(p for p in images.glob(f"{file_stem(mask)}.*") if p.is_file())
    return hits[0] if hits else None


def _progress(items, description: str, quiet: bool, total: int | None = None):
    """``items`` with a progress bar on stderr when there are 20 or more (``total`` for iterators)."""
    total = len(items) if total is None else total
    if quiet or total < 20:
        return items
    from rich.progress import track

    return track(items, description=description, total=total, console=err, transient=True)


@app.command()
def geometry(
    masks: Annotated[list[Path], typer.Argument(help="Mask files or folders of masks (PNG, .mha, .nii...).")],
    labels: Annotated[
        LabelScheme, typer.Option(help="Label values: psfhs 0/1/2, iugc2024 0/7/8 or 0/127/255, auto detects.")
    ] = LabelScheme.AUTO,
    orientation: Annotated[
        Orientation, typer.Option(help="standard = official rule; mirrored for mirrored scans.")
    ] = Orientation.STANDARD,
    hsd: Annotated[HSDMethod, typer.Option(help="HSD definition.")] = HSDMethod.NEAREST,
    spacing: Annotated[
        tuple[float, float] | None, typer.Option(help="Pixel spacing SX SY in mm/px: HSD in mm.")
    ] = None,
    clean: Annotated[bool, typer.Option(help="Clean predicted masks first (largest part, holes, border).")] = False,
    allow_border: Annotated[bool, typer.Option(help="Measure even if a PS end touches the image border.")] = False,
    images: Annotated[Path | None, typer.Option(help="Folder of images with the masks' names, for overlays.")] = None,
    overlays: Annotated[Path | None, typer.Option(help="Write an overlay PNG per mask into this folder.")] = None,
    csv: Annotated[Path | None, typer.Option(help="Write IUGC 2025 CSV (+ AOP, HSD, status) here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Landmarks, AoP and HSD from PS/FH masks, by the official rule (docs/conventions.md)."""
    from .geometry import measure_mask
    from .io import read_any, read_label_map, write_predictions_csv
    from .io.labels import MASK_SUFFIXES

    files = _expand(masks, MASK_SUFFIXES)
    if images is not None and not images.is_dir():
        raise _usage(f"--images {images}: not a folder")
    records, failures = [], 0
    for path in _progress(files, "Measuring masks", quiet):
        try:
            lab = read_label_map(path, scheme=labels.value)
            sp = spacing
            if sp is None and path.name.lower().endswith((".mha", ".mhd", ".nii", ".nii.gz")):
                sp = read_any(path).pixel_spacing
            m = measure_mask(
                lab, orientation=orientation, hsd_method=hsd, pixel_spacing=sp, clean=clean, allow_border=allow_border
            )
        except ValueError as exc:  # InputError and friends: report, skip, go on
            failures += 1
            err.print(f"[red]skipped[/red] {escape(str(exc))}")
            continue
        records.append((path, m))
        if overlays is not None:
            _write_overlay(overlays, path, m, lab, _find_image(images, path))

    if csv is not None:
        write_predictions_csv(csv, [(p.name, m) for p, m in records])
    if not quiet:
        _print_measurements(records, json_out)
        written = [f"CSV {csv}"] * (csv is not None) + [f"overlays in {overlays}/"] * (overlays is not None)
        if written:
            err.print("wrote " + ", ".join(written))
    if failures:
        err.print(f"[yellow]{failures} of {len(files)} file(s) could not be read[/yellow]")
        raise typer.Exit(EXIT_PARTIAL)


def _write_overlay(folder: Path, mask_path: Path, m, lab, image_path: Path | None) -> None:
    from .io import file_stem, read_any, write_png
    from .viz import draw_overlay

    image = None if image_path is None else read_any(image_path).pixels
    if image is None or image.ndim != 2 or image.shape != lab.shape:
        image = (lab.astype("uint8") * 100).astype("uint8")
    write_png(
        folder / f"{file_stem(mask_path)}_overlay.png", draw_overlay(image, m, label_map=lab, title=mask_path.name)
    )


def _fmt(v: float, digits: int = 2) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _print_measurements(records, as_json: bool) -> None:
    if as_json:
        data = [{"file": str(p), **m.as_dict()} for p, m in records]
        out.print_json(json.dumps(data, allow_nan=False))
        return
    table = Table(title=f"{len(records)} measurement(s)", show_lines=False, box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("file", "PS1 x, y", "PS2 x, y", "FH1 x, y", "AoP °", "HSD", "status"):
        right = col in ("AoP °", "HSD")
        table.add_column(col, justify="right" if right else "left", no_wrap=col != "status", min_width=len(col))
    for p, m in records:
        pts = ["-"] * 3 if m.landmarks is None else [f"{x:.1f}, {y:.1f}" for x, y in m.landmarks.to_array()]
        status = "ok" if m.ok else f"[yellow]not measurable[/yellow]: {escape(m.reason)}"
        table.add_row(escape(p.name), *pts, _fmt(m.aop, 1), f"{_fmt(m.hsd, 1)} {m.hsd_unit}", status)
    out.print(table)


@app.command()
def evaluate(
    pred: Annotated[Path, typer.Option("--pred", help="Prediction CSV (IUGC 2025 format, optional HSD).")],
    gt: Annotated[Path, typer.Option("--gt", help="Ground-truth CSV (IUGC 2025 format, optional HSD).")],
    gt_aop: Annotated[Path | None, typer.Option(help="Ground-truth AoP CSV (Filename,AOP), if separate.")] = None,
    pred_masks: Annotated[Path | None, typer.Option(help="Folder of predicted masks (matched by name).")] = None,
    gt_masks: Annotated[Path | None, typer.Option(help="Folder of ground-truth masks.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write summary.json, per_image.csv and plots here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Landmark, AoP, HSD (and segmentation) errors of predictions against ground truth."""
    from .errors import InputError
    from .evaluate import evaluate_files

    for opt, path in (("--pred", pred), ("--gt", gt), ("--gt-aop", gt_aop)):
        if path is not None and not path.is_file():
            raise _usage(f"{opt} {path}: no such file")
    if (pred_masks is None) != (gt_masks is None):
        raise _usage("--pred-masks and --gt-masks go together")
    for opt, path in (("--pred-masks", pred_masks), ("--gt-masks", gt_masks)):
        if path is not None and not path.is_dir():
            raise _usage(f"{opt} {path}: not a folder")
    try:
        res = evaluate_files(pred, gt, gt_aop_csv=gt_aop, pred_masks=pred_masks, gt_masks=gt_masks)
    except InputError as exc:
        raise _usage(str(exc)) from None
    reports = [r for r in (res.landmarks, res.segmentation) if r is not None]
    if res.unmatched_predictions:
        err.print(f"[yellow]ignored {len(res.unmatched_predictions)} prediction(s) not in the ground truth[/yellow]")
    if res.missing_pred_masks:
        err.print(f"[yellow]{len(res.missing_pred_masks)} predicted mask(s) missing: scored as empty[/yellow]")
    if json_out:
        summary = {"landmarks": res.landmarks.summary}
        if res.segmentation is not None:
            summary["segmentation"] = res.segmentation.summary
        out.print_json(json.dumps(summary, default=_json_default))
    else:
        _print_evaluation(res)
    if report is not None:
        from .report import write_report

        written = write_report(reports if len(reports) > 1 else reports[0], report)
        err.print(f"report: {len(written)} file(s) in {report}")


def _json_default(value):
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


def _print_evaluation(res) -> None:
    s = res.landmarks.summary
    unit = s["unit"]
    t = Table(title=f"Landmarks: {s['n_images']} image(s), {s['n_missing']} missing/not measurable")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row(f"MRE ({unit})", _fmt(s["mre"], 3))
    for name, v in s["per_landmark"].items():
        t.add_row(f"  {name} error ({unit})", _fmt(v, 3))
    for r, v in s["sdr"].items():
        t.add_row(f"SDR@{r} {unit} (%)", _fmt(100 * v, 1))
    for key, label, u in (("aop", "AoP", "deg"), ("hsd", "HSD", unit)):
        a = s.get(key)
        if a:
            t.add_row(f"{label} MAE ({u})", _fmt(a["mae"], 3))
            t.add_row(f"{label} median AE ({u})", _fmt(a["median_ae"], 3))
            t.add_row(f"{label} bias, pred - gt ({u})", _fmt(a["bias"], 3))
    out.print(t)
    if res.segmentation is not None:
        seg = res.segmentation.summary
        t = Table(title=f"Segmentation: {seg['n_images']} image(s)")
        for col in ("class", "Dice", f"HD ({seg['unit']})", "HD95", "ASD", "empty pred."):
            t.add_column(col, justify="left" if col == "class" else "right")
        for cls, m in seg["per_class"].items():
            row = [_fmt(m[k], 4 if k == "dice" else 2) for k in ("dice", "hd", "hd95", "asd")]
            t.add_row(cls, *row, str(seg["n_empty_pred"][cls]))
        out.print(t)
        aop_mae = s["aop"]["mae"] if s.get("aop") else math.nan
        out.print(f"FH-PS-AoP 2023 score: {_fmt(res.segmentation.score(aop_mae), 4)}")


ConfigArg = Annotated[Path, typer.Argument(help="YAML config (see configs/).", exists=True, dir_okay=False)]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config value: key.sub=value.")]


def _load(config: Path, overrides: list[str] | None):
    from .config import load_config
    from .errors import InputError

    try:
        return load_config(config, overrides or [])
    except InputError as exc:
        raise _usage(str(exc)) from None


@app.command()
def train(
    config: ConfigArg,
    fold: Annotated[int | None, typer.Option(help="Train on the other folds of this grouped fold.")] = None,
    devices: Annotated[int, typer.Option(help="Devices (GPUs, or CPU processes) for Lightning DDP.")] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/NAME/all or foldK).")] = None,
    overrides: SetOpt = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Start afresh even if a checkpoint exists.")] = False,
) -> None:
    """Train a model (Lightning). Re-running the same command resumes an interrupted run exactly."""
    cfg = _load(config, overrides)
    from .train.fit import fit

    out_dir = out_dir or Path("runs") / cfg.name / ("all" if fold is None else f"fold{fold}")
    res = fit(cfg, out_dir, fold=fold, devices=devices, resume=not no_resume)
    shown = {k: round(v, 4) for k, v in res.metrics.items()}
    err.print(f"trained {cfg.model.name} for {res.epochs} epoch(s) in {res.seconds / 60:.1f} min; {shown}")
    typer.echo(str(res.checkpoint))  # plain (no wrapping): scripts read it


@app.command()
def cv(
    config: ConfigArg,
    folds: Annotated[int, typer.Option(help="Number of grouped folds.")] = 5,
    devices: Annotated[int, typer.Option(help="Devices for Lightning DDP.")] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default runs/NAME/cv).")] = None,
    overrides: SetOpt = None,
) -> None:
    """Grouped K-fold cross-validation: trains every fold, evaluates out-of-fold predictions, writes a
    report (summary.json, per-image CSV, plots) and cv_summary.json."""
    cfg = _load(config, overrides)
    from .train.cv import cross_validate

    out_dir = out_dir or Path("runs") / cfg.name / "cv"
    summary = cross_validate(cfg, out_dir, folds=folds, devices=devices)
    s = summary["landmarks"]
    table = Table(title=f"{cfg.name}: {folds}-fold grouped CV on {summary['n_images']} images")
    for col in ("MRE px", "PS1", "PS2", "FH1", "SDR@5", "SDR@10", "AoP MAE", "AoP median", "missing"):
        table.add_column(col, justify="right")
    pl = s["per_landmark"]
    table.add_row(_fmt(s["mre"]), _fmt(pl["PS1"]), _fmt(pl["PS2"]), _fmt(pl["FH1"]),
                  _fmt(100 * s["sdr"]["5"], 1), _fmt(100 * s["sdr"]["10"], 1), _fmt(s["aop"]["mae"]),
                  _fmt(s["aop"]["median_ae"]), str(s["n_missing"]))  # fmt: skip
    out.print(table)
    err.print(f"report in {out_dir}/report, summary in {out_dir}/cv_summary.json ({summary['seconds'] / 60:.1f} min)")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Lightning checkpoint (.ckpt) from partus train.", exists=True)],
    out_file: Annotated[Path, typer.Option("--out", help="Destination .onnx file.")] = Path("model.onnx"),
    atol: Annotated[float, typer.Option(help="Largest allowed ONNX Runtime vs torch difference.")] = 1e-4,
) -> None:
    """Export a checkpoint to ONNX (self-describing metadata) after a numeric parity check."""
    from .export import export_onnx

    try:
        meta = export_onnx(checkpoint, out_file, atol=atol)
    except RuntimeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_PARTIAL) from None
    err.print(
        f"{meta['model']} ({meta['kind']}) -> {out_file}; ONNX Runtime vs torch max |diff| {meta['max_abs_diff']:.2e}"
    )


ModelOpt = Annotated[
    list[Path] | None,
    typer.Option("--model", help="Exported .onnx model(s); several make an ensemble. Default: bundled."),
]
TtaOpt = Annotated[
    bool,
    typer.Option("--tta", help="Average with the mirrored image (flip TTA). Hurts the bundled models: see the card."),
]
OrientationOpt = Annotated[Orientation, typer.Option(help="standard = official rule; mirrored for mirrored scans.")]
HsdOpt = Annotated[HSDMethod, typer.Option("--hsd", help="HSD definition.")]
SpacingOpt = Annotated[
    tuple[float, float] | None, typer.Option(help="Pixel spacing SX SY in mm/px (default: from the file); HSD in mm.")
]


def _predictor(models: list[Path] | None, tta: bool):
    from .errors import InputError
    from .predict import Predictor

    try:
        return Predictor(models or None, tta_flip=tta)
    except InputError as exc:
        raise _usage(str(exc)) from None


@app.command()
def measure(
    inputs: Annotated[list[Path], typer.Argument(help="Images, DICOM (single or multi-frame), .mha/NIfTI or videos.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for overlays, per-frame CSVs and plots.")] = Path(
        "partus-out"
    ),
    models: ModelOpt = None,
    tta: TtaOpt = False,
    orientation: OrientationOpt = Orientation.STANDARD,
    hsd: HsdOpt = HSDMethod.NEAREST,
    spacing: SpacingOpt = None,
    step: Annotated[int, typer.Option(min=1, help="Clips: measure every STEP-th frame.")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Measure AoP and HSD on raw ultrasound: landmarks, verdict and an overlay PNG per image; for a
    video or multi-frame DICOM a per-frame CSV and a plot of AoP over time."""
    from .batch import (
        IMAGE_SUFFIXES,
        MultiFrameError,
        is_video,
        iter_file_predictions,
        measure_clip,
        unique_stems,
        write_overlay,
    )
    from .errors import InputError
    from .io.datasets import VIDEO_EXTENSIONS

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


@app.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Folders (or files) of images: PNG/JPEG/BMP/TIFF, .mha, DICOM.")],
    csv_out: Annotated[Path, typer.Option("--out", help="Predictions CSV (IUGC 2025 columns + AOP, HSD, quality).")],
    overlays: Annotated[Path | None, typer.Option(help="Write an overlay PNG per image into this folder.")] = None,
    masks: Annotated[
        Path | None, typer.Option(help="Write the predicted PS/FH mask (0/1/2 PNG) into this folder.")
    ] = None,
    models: ModelOpt = None,
    tta: TtaOpt = False,
    orientation: OrientationOpt = Orientation.STANDARD,
    hsd: HsdOpt = HSDMethod.NEAREST,
    spacing: SpacingOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per ONNX Runtime call.")] = 16,
    json_out: Annotated[bool, typer.Option("--json", help="Also print every result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Predict a folder: one CSV row per image (unreadable files are reported, listed as not measurable,
    and skipped; they never abort the run)."""
    from .batch import IMAGE_SUFFIXES, iter_file_predictions, unique_stems, write_mask_file, write_overlay
    from .errors import InputError
    from .io import write_predictions_csv
    from .measurement import Measurement

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


@app.command()
def submission(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the IUGC 2025 submission (model.py + model).")],
    models: ModelOpt = None,
    tta: TtaOpt = False,
) -> None:
    """Write an IUGC 2025 challenge submission: model.py (class model: load, predict(PIL image) ->
    [x1, y1, x2, y2, x3, y3]) around the bundled model, with partus' inference code vendored in."""
    from .errors import InputError
    from .submission import write_submission

    try:
        written = write_submission(out_dir, models=models or None, tta_flip=tta)
    except InputError as exc:
        raise _usage(str(exc)) from None
    err.print(f"wrote {len(written)} files to {out_dir}/ (entry point {out_dir / 'model.py'})")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default: this computer only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    token: Annotated[
        str | None, typer.Option(envvar="PARTUS_TOKEN", help="Require 'Authorization: Bearer TOKEN' on /v1.")
    ] = None,
    models: ModelOpt = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body (MiB).")] = 20.0,
    max_pixels: Annotated[int, typer.Option(help="Largest declared image size (pixels, all frames).")] = 16_000_000,
    tmp_dir: Annotated[Path | None, typer.Option(help="Where per-request temporary folders go (default: system).")] = (
        None
    ),
) -> None:
    """Serve the web page and the HTTP API (POST /v1/measure, GET /healthz, docs at /docs)."""
    import ipaddress

    import uvicorn

    from .app import create_app

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and token is None:
        err.print(f"[yellow]warning:[/yellow] listening on {host} without --token: anyone who can reach it can use it")
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    predictor = _predictor(models, False)
    api = create_app(predictor, token=token, max_upload_mb=max_upload_mb, max_pixels=max_pixels, tmp_root=tmp_dir)
    err.print(f"partus {predictor.id} on http://{host}:{port}/  (a research tool, not a medical device)")
    uvicorn.run(api, host=host, port=port, log_level="warning")


def main() -> None:  # pragma: no cover - console-script entry
    sys.exit(app())
