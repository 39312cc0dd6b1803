"""``partus predict``: folders, files and clips to one CSV (or Parquet) row per image or frame, on the local
engine or on Ray, durable and resumable (:func:`partus.engine.predict_to_file`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..conventions import DisplayOrientation, HSDMethod
from ._common import EXIT_PARTIAL, ModelOpt, TtaOpt, _expand, _predictor, _print_measurements, _usage, err
from .measure import HsdOpt, OrientationOpt, SpacingOpt


class Engine(StrEnum):
    local = "local"
    ray = "ray"


def predict(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Folders (or files) of images (PNG/JPEG/BMP/TIFF, .mha, DICOM) and videos (every frame a row)."
        ),
    ],
    csv_out: Annotated[
        Path, typer.Option("--out", help="Predictions CSV (IUGC 2025 columns + AOP, HSD, quality), or .parquet.")
    ],
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
    engine: Annotated[
        Engine, typer.Option(help='local: this process; ray: a Ray Data pipeline (pip install "partus[ray]").')
    ] = Engine.local,
    address: Annotated[
        str | None,
        typer.Option(help="Ray: join this cluster (auto, HOST:PORT, ray://HOST:PORT); default a local instance."),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Ray: model actors (default one per CPU).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep the rows a killed run committed (OUT.partial/) and do the rest.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Also print every result as JSON (local engine).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Predict folders, files and clips: one row per image or video frame (``clip.mp4#f00012``), committed
    as it is measured; unreadable files get a not-measurable row with the reason and never abort the run.
    A killed run continues with ``--resume``."""
    from ..batch import IMAGE_SUFFIXES, unique_stems, write_mask_file, write_overlay
    from ..engine import predict_to_file
    from ..errors import InputError
    from ..io.datasets import VIDEO_EXTENSIONS

    if engine is Engine.ray and (overlays or masks or json_out):
        raise _usage("--overlays, --masks and --json need the local engine (the Ray engine writes rows only)")
    if engine is Engine.local and (address or workers):
        raise _usage("--address and --workers are options of --engine ray")
    files = _expand(inputs, IMAGE_SUFFIXES + VIDEO_EXTENSIONS)
    stems = unique_stems(files)
    predictor = _predictor(models, tta)
    if masks is not None and not predictor.has_masks:
        raise _usage("--masks needs a segmentation model; the given model(s) predict landmarks only")
    records: list = []

    def keep(unit, key: str, pred) -> None:
        if isinstance(pred, InputError):
            err.print(f"[red]skipped[/red] {escape(str(pred))}")
            return
        stem = stems[Path(unit.path)] + (key[len(unit.name) :].replace("#", "_") if key != unit.name else "")
        records.append((Path(unit.path) if key == unit.name else Path(key), pred.measurement))
        if overlays is not None:
            write_overlay(overlays / f"{stem}_overlay.png", pred, title=key)
        if masks is not None:
            write_mask_file(masks, stem, pred)

    try:
        with _row_progress(quiet) as progress:
            stats = predict_to_file(
                files, csv_out, models=models or None, engine=engine.value, resume=resume, batch_size=batch_size,
                workers=workers, address=address, tta_flip=tta, progress=progress, predictor=predictor,
                on_prediction=keep if engine is Engine.local else None,
                orientation=orientation, hsd_method=hsd, pixel_spacing=spacing,
            )  # fmt: skip
    except InputError as exc:
        raise _usage(str(exc)) from None
    if json_out:
        _print_measurements(records, True)
    if not quiet:
        workers_note = f" on {len(stats.workers)} Ray worker(s)" if stats.workers else ""
        err.print(f"{stats.measured} row(s) measured{workers_note} in {stats.seconds:.1f} s "
                  f"({stats.rows_per_s:.1f} rows/s); {stats.rows} in {csv_out}")  # fmt: skip
    if stats.unreadable:
        err.print(f"[yellow]{stats.unreadable} input(s) in {csv_out} could not be read (their rows say why)[/yellow]")
        raise typer.Exit(EXIT_PARTIAL)


class _row_progress:
    """A rich progress bar of committed rows with rows/s (nothing when quiet)."""

    def __init__(self, quiet: bool):
        self.bar = None
        if not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("Measuring"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"),
                                TimeElapsedColumn(), console=err, transient=True)  # fmt: skip

    def __enter__(self):
        if self.bar is None:
            return None
        self.bar.start()
        self.task = self.bar.add_task("rows", total=None, rate="")
        return self

    def __call__(self, done: int, total: int) -> None:
        task = self.bar.tasks[0]
        rate = done / task.elapsed if task.elapsed else 0.0
        self.bar.update(self.task, completed=done, total=total, rate=f"{rate:.1f} rows/s")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
