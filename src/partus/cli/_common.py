"""Shared pieces of the ``partus`` command line: consoles, exit codes, input expansion, progress bars,
number formatting, the measurement table and the model options of measure/predict/submission/serve."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

out = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


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


def _read_scans(inputs: list[Path], frame_step: int, what: str = "the inputs"):
    """Unlabelled scans from files and folders (images, DICOM, videos: every ``frame_step``-th frame), with
    a progress bar; unreadable files are listed and skipped, none readable is a usage error."""
    from rich.progress import Progress

    from ..batch import IMAGE_SUFFIXES
    from ..data.unlabelled import read_scans
    from ..io.datasets import VIDEO_EXTENSIONS

    files = _expand(inputs, IMAGE_SUFFIXES + VIDEO_EXTENSIONS)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("reading scans", total=len(files))
        scans, problems = read_scans(files, frame_step=frame_step, on_file=lambda _: bar.advance(task))
    for path, why in problems[:10]:
        err.print(f"[yellow]skipped[/yellow] {path}: {why}")
    if len(problems) > 10:
        err.print(f"[yellow]skipped[/yellow] {len(problems) - 10} more unreadable files")
    if not scans:
        raise _usage(f"none of {what} could be read")
    return scans


def _progress(items, description: str, quiet: bool, total: int | None = None):
    """``items`` with a progress bar on stderr when there are 20 or more (``total`` for iterators)."""
    total = len(items) if total is None else total
    if quiet or total < 20:
        return items
    from rich.progress import track

    return track(items, description=description, total=total, console=err, transient=True)


def _fmt(v: float, digits: int = 2) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _mirrored_display(m) -> bool:
    """Whether a model-based measurement was taken as a mirrored display (``extras["orientation"]``)."""
    info = (m.extras or {}).get("orientation")
    return isinstance(info, dict) and info.get("display") == "mirrored"


def _print_measurements(records, as_json: bool) -> None:
    if as_json:
        data = [{"file": str(p), **m.as_dict()} for p, m in records]
        out.print_json(json.dumps(data, allow_nan=False))
        return
    table = Table(title=f"{len(records)} measurement(s)", show_lines=False, box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)  # fmt: skip
    reasons, rows = [], []  # reasons are printed under the table, where a long one does not squeeze the columns
    for p, m in records:
        # Whole pixels keep the table within 80 columns; the CSV and JSON outputs carry full precision.
        pts = ["-"] * 3 if m.landmarks is None else [f"{x:.0f}, {y:.0f}" for x, y in m.landmarks.to_array()]
        mirrored = _mirrored_display(m)
        if m.ok:
            status = "ok, [cyan]mirrored[/cyan]" if mirrored else "ok"
        else:
            why = (m.reason or "no reason given") + (" (taken as a mirrored display)" if mirrored else "")
            reasons.append(f"({len(reasons) + 1}) {escape(p.name)}: {escape(why)}")
            status = f"[yellow]not measurable[/yellow] ({len(reasons)})"
        rows.append((escape(p.name), *pts, _fmt(m.aop, 1), f"{_fmt(m.hsd, 1)} {m.hsd_unit}", status))
    for i, col in enumerate(("file", "PS1 x, y", "PS2 x, y", "FH1 x, y", "AoP °", "HSD", "status")):
        # Only the file name may fold onto more lines; every other cell is kept whole on one line.
        widest = max([len(col), *(len(Text.from_markup(r[i]).plain) for r in rows)])
        table.add_column(col, justify="right" if col in ("AoP °", "HSD") else "left", no_wrap=col != "file",
                         overflow="fold" if col == "file" else "ellipsis",
                         min_width=len(col) if col == "file" else widest)  # fmt: skip
    for r in rows:
        table.add_row(*r)
    out.print(table)
    for line in reasons:
        out.print(line)


ModelOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--model",
        help="Exported .onnx model(s) or folders of them (e.g. from partus adapt); several "
        "make an ensemble. Default: bundled.",
    ),
]
TtaOpt = Annotated[
    bool,
    typer.Option("--tta", help="Average with the mirrored image (flip TTA). Hurts the bundled models: see the card."),
]


def _predictor(models: list[Path] | None, tta: bool):
    from ..errors import InputError
    from ..predict import Predictor

    try:
        return Predictor(models or None, tta_flip=tta)
    except InputError as exc:
        raise _usage(str(exc)) from None
