"""Text form of numbers and ``"(x, y)"`` points, shared by the CSV readers and writers.

Writing rounds to a fixed number of decimals and drops trailing zeros (``146``, ``146.5``, ``146.25``), so
reading back gives ``float(f"{v:.{decimals}f}")`` exactly, and writing that again gives the same text.
"""

from __future__ import annotations

import math


def format_number(value: float, decimals: int) -> str:
    """Format a finite number with at most ``decimals`` decimals, without trailing zeros or ``-0``."""
    text = f"{float(value):.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_point(x: float, y: float, decimals: int) -> str:
    """Format a point as ``"(x, y)"`` (the IUGC 2025 CSV form)."""
    return f"({format_number(x, decimals)}, {format_number(y, decimals)})"


def parse_number(text: str) -> float:
    """Parse a finite number; raise ``ValueError`` with a short reason otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"cannot parse {text!r} as a number") from None
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text!r}")
    return value


def parse_point(text: str) -> tuple[float, float]:
    """Parse ``"(x, y)"`` (integers or floats, optional spaces) into two finite floats.

    Raises
    ------
    ValueError
        With a short reason: not of the form ``(x, y)``, or a coordinate that is not a finite number.
    """
    body = text.strip()
    if not (body.startswith("(") and body.endswith(")")) or body.count(",") != 1:
        raise ValueError(f'cannot parse {text!r} as a point; expected "(x, y)"')
    parts = body[1:-1].split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f'cannot parse {text!r} as a point; expected "(x, y)" with numbers') from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"non-finite coordinate in {text!r}")
    return x, y
