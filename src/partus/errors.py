"""Exceptions of partus. Every message names the input (file, argument) and the problem."""

from __future__ import annotations

from os import PathLike


class PartusError(Exception):
    """Base class of every partus error."""


class InputError(PartusError, ValueError):
    """An input file or array cannot be used: unreadable, truncated, wrong shape/dtype/labels/columns.

    Parameters
    ----------
    source : str or path-like or None
        The file (or argument name) the problem is in; it leads the message.
    problem : str
        What is wrong, ideally with what was expected and what was found.
    """

    def __init__(self, source: str | PathLike | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(problem if source is None else f"{source}: {problem}")


class NotMeasurableError(PartusError, ValueError):
    """The geometry cannot be measured on this input (missing structure, degenerate shape...).

    ``reason`` is a short human-readable sentence, reported as the "not measurable" reason.
    """

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)
