"""Result types: :class:`Landmarks` and :class:`Measurement`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .conventions import LANDMARKS, HSDMethod, Orientation, Status


@dataclass(frozen=True)
class Landmarks:
    """The three landmarks as ``(x, y)`` pixel coordinates of the original image."""

    ps1: tuple[float, float]
    ps2: tuple[float, float]
    fh1: tuple[float, float]

    @classmethod
    def from_array(cls, points: Any) -> Landmarks:
        """Build from an array-like of shape ``(3, 2)`` (rows PS1, PS2, FH1) or ``(6,)``."""
        arr = np.asarray(points, dtype=float)
        if arr.shape == (6,):
            arr = arr.reshape(3, 2)
        if arr.shape != (3, 2):
            raise ValueError(f"landmarks must have shape (3, 2) or (6,), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"landmarks must be finite, got {arr.tolist()}")
        return cls(*(tuple(float(v) for v in row) for row in arr))  # type: ignore[arg-type]

    def to_array(self) -> np.ndarray:
        """Return a ``(3, 2)`` float array with rows PS1, PS2, FH1."""
        return np.array([self.ps1, self.ps2, self.fh1], dtype=float)

    def as_dict(self) -> dict[str, tuple[float, float]]:
        return dict(zip(LANDMARKS, (self.ps1, self.ps2, self.fh1), strict=True))


@dataclass(frozen=True)
class Measurement:
    """Landmarks, AoP and HSD of one image, with a quality verdict.

    A measurement that could not be made has ``status == "not measurable"``, a human-readable
    ``reason``, and ``NaN`` for every number it could not compute.
    """

    landmarks: Landmarks | None
    aop: float = math.nan
    hsd: float = math.nan
    hsd_unit: str = "px"
    hsd_method: HSDMethod = HSDMethod.NEAREST
    orientation: Orientation = Orientation.STANDARD
    status: Status = Status.OK
    reason: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @classmethod
    def not_measurable(cls, reason: str, landmarks: Landmarks | None = None, **kw: Any) -> Measurement:
        return cls(landmarks=landmarks, status=Status.NOT_MEASURABLE, reason=reason, **kw)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``)."""

        def num(v: float) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        return {
            "landmarks": None
            if self.landmarks is None
            else {k: [float(v[0]), float(v[1])] for k, v in self.landmarks.as_dict().items()},
            "aop_deg": num(self.aop),
            "hsd": num(self.hsd),
            "hsd_unit": self.hsd_unit,
            "hsd_method": self.hsd_method.value,
            "orientation": self.orientation.value,
            "status": self.status.value,
            "reason": self.reason,
            **self.extras,
        }
