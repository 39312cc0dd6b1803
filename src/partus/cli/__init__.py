"""The ``partus`` command line (typer + rich). A thin shell: parse, call the library, format.

Exit codes: 0 success; 1 some inputs could not be read (the others were processed); 2 usage error.

Modules: :mod:`._common` (consoles, exit codes, shared helpers and options), :mod:`.geometry` (geometry,
evaluate), :mod:`.train` (train, cv, export, train-plane), :mod:`.semi`
(pretrain, pseudo-label, adapt), :mod:`.measure` (measure, submission), :mod:`.predict`
(predict, on the local or the Ray engine) and :mod:`.serve` (serve). This module builds the typer ``app``
and registers the commands.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import geometry as _geometry
from . import measure as _measure
from . import predict as _predict
from . import semi as _semi
from . import serve as _serve
from . import train as _train
from ._common import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, err, out

__all__ = ["EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "app", "err", "main", "out"]

app = typer.Typer(
    name="partus",
    help="Labour progress on intrapartum ultrasound: landmarks, Angle of Progression (AoP), HSD.",
    no_args_is_help=True,
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Labour progress on intrapartum ultrasound: landmarks, Angle of Progression (AoP), HSD.

    A research tool, not a medical device. Conventions: docs/conventions.md.
    """
    if version:
        from .. import __version__

        out.print(f"partus {__version__}")
        raise typer.Exit(EXIT_OK)


for _command in (
    _geometry.geometry,
    _geometry.evaluate,
    _train.train,
    _train.cv,
    _train.export,
    _train.train_plane,
    _semi.pretrain,
    _semi.pseudo_label,
    _semi.adapt,
    _measure.measure,
    _predict.predict,
    _measure.submission,
    _serve.serve,
):
    app.command()(_command)
del _command


def main() -> None:  # pragma: no cover - console-script entry
    sys.exit(app())
