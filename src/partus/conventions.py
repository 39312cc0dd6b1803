"""Conventions of partus, stated once and imported everywhere.

Coordinates
    Points are ``(x, y)`` in pixels of the *original* image: origin at the top-left pixel centre, x to
    the right, y down, pixel centres at integer coordinates. Arrays are ``H x W`` (row = y, column = x).
    Anything resized internally is mapped back before it leaves a function.

Landmarks
    ``PS1`` is the inferior (caudal) end of the pubic symphysis and the vertex of the Angle of
    Progression; ``PS2`` its superior end; ``FH1`` the point where the tangent from PS1 touches the
    fetal-head contour.

Measurements
    AoP is the angle between ``PS2 - PS1`` and ``FH1 - PS1`` in degrees, in ``[0, 180]``. HSD is a
    distance in pixels, or in millimetres when a pixel spacing is known.

See ``docs/conventions.md`` for the full text and its sources.
"""

from __future__ import annotations

from enum import StrEnum

#: Landmark names in their fixed order (rows of every ``(3, 2)`` landmark array).
LANDMARKS: tuple[str, str, str] = ("PS1", "PS2", "FH1")

#: Internal label values of partus label maps (the PSFHS / FH-PS-AoP 2023 values).
BACKGROUND, PS, FH = 0, 1, 2
CLASS_NAMES: dict[int, str] = {PS: "PS", FH: "FH"}

#: IUGC 2024 training masks.
IUGC2024_TRAIN_LABELS: dict[int, int] = {0: BACKGROUND, 7: PS, 8: FH}

#: IUGC 2024 frame classes (JNU-IFM): 3 none, 4 PS only, 5 head only, 6 PS + head (standard plane).
IUGC2024_FRAME_CLASSES: dict[int, str] = {3: "none", 4: "ps_only", 5: "head_only", 6: "standard_plane"}

#: Anatomical reference (Kalache et al., Ultrasound Obstet Gynecol 2009;33:326-330): AoP >= 120 deg in
#: the second stage of labour favours spontaneous vaginal delivery.
AOP_FAVOURABLE_DEG = 120.0


class Orientation(StrEnum):
    """Which end of the pubic symphysis is PS1 (the AoP vertex).

    ``standard``
        The official rule (IUGC 2024 evaluator, datasets' ground truth): PS1 is the endpoint with the
        larger x, i.e. the head lies to the right of the symphysis.
    ``mirrored``
        For scans displayed mirrored (head beyond the *left* end of the symphysis): PS1 is the
        endpoint with the smaller x.

    There is deliberately no automatic choice: on the 658 PSFHS masks no simple rule (head centroid
    side, nearer endpoint, larger angle) told mirrored scans from standard ones reliably (5-30 %
    misclassified), and a silent flip changes the AoP by tens of degrees.
    """

    STANDARD = "standard"
    MIRRORED = "mirrored"


class DisplayOrientation(StrEnum):
    """How a model-based measurement decides the display orientation of a scan.

    ``auto`` (default)
        The model's orientation head decides per scan (``extras["orientation"]`` gives the decision and
        P(mirrored)); a mirrored scan is mirrored back, measured, and its landmarks mapped back with
        their anatomical identity. Models without an orientation head measure as ``standard``.
    ``standard`` / ``mirrored``
        The orientation is given: every scan is measured as standard, or as mirrored (canonicalised).
    """

    AUTO = "auto"
    STANDARD = "standard"
    MIRRORED = "mirrored"


class HSDMethod(StrEnum):
    """How the head-symphysis distance is measured.

    ``nearest``
        Distance from PS1 to the nearest fetal-head contour point (IUGC 2024 definition, default).
    ``infrapubic``
        Distance from PS1 along the infrapubic line (through PS1, perpendicular to the symphysis axis,
        towards the head) to the fetal-head contour (the clinical definition).
    """

    NEAREST = "nearest"
    INFRAPUBIC = "infrapubic"


class LabelScheme(StrEnum):
    """How label values of a mask file map to partus values (0 background, 1 PS, 2 FH).

    ``psfhs``: 0/1/2. ``iugc2024``: training masks 0/7/8, or validation/test masks 0/127/255 where the
    smaller foreground area is PS. ``auto``: the first scheme whose values contain every value found.
    """

    AUTO = "auto"
    PSFHS = "psfhs"
    IUGC2024 = "iugc2024"


class Status(StrEnum):
    """Quality verdict of one measurement."""

    OK = "ok"
    NOT_MEASURABLE = "not measurable"


def parse_enum(enum: type[StrEnum], value: str | StrEnum, name: str) -> StrEnum:
    """Normalise ``value`` to a member of ``enum``; the error lists the valid choices."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}") from None
