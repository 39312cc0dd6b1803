"""Label maps: reading dataset masks into partus values (0 background, 1 PS, 2 FH).

Schemes
    ``psfhs``: PSFHS / FH-PS-AoP 2023 masks, values 0/1/2 (already partus values).
    ``iugc2024``: IUGC 2024 training masks 0/7/8 (7 PS, 8 FH), or its validation/test masks 0/127/255,
    where the two foreground values are not fixed: the class with the smaller area is PS.
    ``auto``: the first scheme whose values contain every value found, in the order above.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..conventions import BACKGROUND, FH, IUGC2024_TRAIN_LABELS, PS, LabelScheme, parse_enum
from ..errors import InputError
from .images import read_any

PSFHS_VALUES = frozenset({BACKGROUND, PS, FH})
IUGC2024_TRAIN_VALUES = frozenset(IUGC2024_TRAIN_LABELS)
IUGC2024_EVAL_VALUES = frozenset({0, 127, 255})


#: File suffixes of mask files (images and medical volumes), lower case.
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".mha", ".mhd", ".nii", ".nii.gz")


def _by_area(arr: np.ndarray, source: str | os.PathLike) -> np.ndarray:
    present = [v for v in (127, 255) if np.any(arr == v)]
    out = np.zeros(arr.shape, np.uint8)
    if not present:
        return out
    if len(present) == 1:
        raise InputError(
            source,
            f"only one foreground value ({present[0]}) in a 0/127/255 mask: PS and FH are told apart by area, "
            "which needs both; pass mapping={value: 1 or 2} if you know which it is",
        )
    areas = {v: int(np.count_nonzero(arr == v)) for v in present}
    if areas[127] == areas[255]:
        raise InputError(source, f"cannot tell PS from FH by area: values 127 and 255 both cover {areas[127]} pixels")
    ps_value = min(areas, key=areas.__getitem__)
    out[arr == ps_value] = PS
    out[arr == (255 if ps_value == 127 else 127)] = FH
    return out


def _mapped(arr: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    bad_targets = sorted(set(mapping.values()) - PSFHS_VALUES)
    if bad_targets:
        raise InputError("mapping", f"targets must be partus values 0, 1, 2; got {bad_targets}")
    bad_keys = sorted(k for k in mapping if not 0 <= int(k) <= 255)
    if bad_keys:
        raise InputError("mapping", f"file values must lie in 0..255; got {bad_keys}")
    lut = np.full(256, 255, np.uint8)
    for value, target in mapping.items():
        lut[int(value)] = target
    return lut[arr]


def to_internal_labels(
    values: np.ndarray,
    *,
    scheme: str | LabelScheme = LabelScheme.AUTO,
    mapping: Mapping[int, int] | None = None,
    source: str | os.PathLike = "label_map",
) -> np.ndarray:
    """Convert a dataset label array to partus values (0 background, 1 PS, 2 FH).

    Parameters
    ----------
    values : ndarray, shape (H, W), integer or bool
        The mask as stored in the file.
    scheme : {"auto", "psfhs", "iugc2024"}, default "auto"
        How to interpret the values (module docstring); ignored when ``mapping`` is given.
    mapping : mapping of int to int, optional
        Explicit ``{file value: partus value}``; 0 is always background. Values not in it are an error.
    source : str or path-like
        Named in error messages (the file the mask came from).

    Returns
    -------
    ndarray, shape (H, W), dtype uint8
        Values in {0, 1, 2}.

    Raises
    ------
    InputError
        If the array is not 2-D integer, holds values the scheme does not know (the message lists the
        values found), or is a 0/127/255 mask whose classes cannot be told apart by area.
    ValueError
        If ``scheme`` is not one of the valid names.
    """
    scheme = parse_enum(LabelScheme, scheme, "scheme")
    arr = np.asarray(values)
    if arr.ndim != 2 or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(source, f"label map must be a 2-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    found = frozenset(np.unique(arr).tolist())
    if mapping is not None:
        known = frozenset({0, *mapping})
        if not found <= known:
            raise InputError(source, f"label values {sorted(found - known)} are not in mapping {dict(mapping)}")
        return _mapped(arr.astype(np.uint8), {0: BACKGROUND, **mapping})
    auto = scheme == LabelScheme.AUTO
    if (auto or scheme == LabelScheme.PSFHS) and found <= PSFHS_VALUES:
        return arr.astype(np.uint8)
    if (auto or scheme == LabelScheme.IUGC2024) and found <= IUGC2024_TRAIN_VALUES:
        return _mapped(arr.astype(np.uint8), IUGC2024_TRAIN_LABELS)
    if (auto or scheme == LabelScheme.IUGC2024) and found <= IUGC2024_EVAL_VALUES:
        return _by_area(arr, source)
    expected = {
        LabelScheme.PSFHS: "0/1/2",
        LabelScheme.IUGC2024: "0/7/8 or 0/127/255",
        LabelScheme.AUTO: "0/1/2, 0/7/8 or 0/127/255",
    }[scheme]
    raise InputError(source, f"unknown label values: found {sorted(found)}, scheme {scheme.value!r} expects {expected}")


def read_label_map(
    path: str | os.PathLike,
    *,
    scheme: str | LabelScheme = LabelScheme.AUTO,
    mapping: Mapping[int, int] | None = None,
) -> np.ndarray:
    """Read a mask file (PNG, ``.mha``, ``.nii``...) as a partus label map (0 bg, 1 PS, 2 FH).

    Parameters
    ----------
    path : str or path-like
        The mask file; any format :func:`partus.io.read_any` reads, one 2-D frame.
    scheme : {"auto", "psfhs", "iugc2024"}, default "auto"
        See :func:`to_internal_labels`.
    mapping : mapping of int to int, optional
        Explicit ``{file value: partus value}``, overriding ``scheme``.

    Returns
    -------
    ndarray, shape (H, W), dtype uint8

    Raises
    ------
    InputError
        If the file cannot be read, is not a single 2-D image, or its values do not fit the scheme (the
        message names the file and the values found).
    """
    data = read_any(path)
    if data.frames != 1:
        raise InputError(path, f"a label map must be one 2-D image, got {data.frames} frames")
    return to_internal_labels(data.pixels, scheme=scheme, mapping=mapping, source=path)
