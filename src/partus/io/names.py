"""Names of inputs in outputs: a file's row name (its file name, or its path when another input shares the
name) and a frame's (``<name>#f<frame>``), shared by batch prediction and the unlabelled-scan readers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["frame_key", "unique_names"]


def frame_key(name: str, frame: int) -> str:
    """Row name of one frame of a multi-frame input."""
    return f"{name}#f{frame:05d}"


def _text(name: str) -> str:
    """A file name as text that can be written (undecodable bytes shown as escapes)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def unique_names(files: Sequence[Path]) -> list[str]:
    """Row names of input files: the file name, or the path as given for every file whose name another
    input shares (independent of the inputs' order)."""
    counts: dict[str, int] = {}
    for p in files:
        counts[p.name] = counts.get(p.name, 0) + 1
    return [_text(p.name if counts[p.name] == 1 else str(p)) for p in files]
