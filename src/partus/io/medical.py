"""Medical image formats: MetaImage / NIfTI via SimpleITK, and DICOM via pydicom.

Pixel spacing is returned as ``(sx, sy)`` in millimetres per pixel (x = between columns, y = between
rows), or ``None`` when the file does not state a physical size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, pixel_array

from ..errors import InputError
from ._atomic import atomic_path
from ._pixels import ImageData, check_file, checked_spacing, image_data, to_gray

#: Extensions :func:`write_mask_mha` can write (``.mhd`` is excluded: it is two files).
MASK_VOLUME_EXTENSIONS = (".mha", ".nii", ".nii.gz")
#: DICOM ``PhysicalUnitsX/YDirection`` code for centimetres.
_DICOM_UNIT_CM = 3


def _sitk_message(exc: RuntimeError) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def _itk_pixels(img: sitk.Image, path: str | os.PathLike) -> np.ndarray:
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:
        if arr.shape[-1] not in (3, 4):
            raise InputError(path, f"unsupported vector pixels with {arr.shape[-1]} components; expected RGB(A)")
        arr = to_gray(arr, order="rgb")
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] == 3 and np.array_equal(arr[0], arr[1]) and np.array_equal(arr[0], arr[2]):
        arr = arr[0]
    if arr.ndim not in (2, 3):
        raise InputError(path, f"expected a 2-D image or a stack of 2-D frames, got array shape {arr.shape}")
    return arr


def read_medical(path: str | os.PathLike, *, trust_unit_spacing: bool = False) -> ImageData:
    """Read a ``.mha``, ``.mhd``, ``.nii`` or ``.nii.gz`` image with SimpleITK.

    A ``3 x H x W`` stack whose three slices are identical (how PSFHS / FH-PS-AoP 2023 stores its gray
    images) is returned as one ``H x W`` image; other stacks are returned as ``F x H x W`` frames. Vector
    (RGB) pixels are converted to gray by luminance. Singleton leading dimensions are dropped.

    Parameters
    ----------
    path : str or path-like
        The file (for ``.mhd``, the header; its data file must sit where the header says).
    trust_unit_spacing : bool, default False
        A spacing of exactly 1 along every axis is the format's default and is written by tools that
        know no physical size (PSFHS does this), so it is reported as unknown (``None``) unless this is
        True.

    Returns
    -------
    ImageData
        Pixels in the file's dtype; ``pixel_spacing`` = the first two ITK spacings ``(sx, sy)``, in mm.

    Raises
    ------
    InputError
        If the file is missing, empty, unreadable by SimpleITK, or not 2-D / a stack of 2-D frames.
    """
    check_file(path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(path, f"cannot be read as a medical image: {_sitk_message(exc)}") from exc
    pixels = _itk_pixels(img, path)
    spacing = img.GetSpacing()
    unit = all(s == 1.0 for s in spacing)
    sxy = None if unit and not trust_unit_spacing else checked_spacing(spacing[0], spacing[1])
    return image_data(pixels, sxy, path)


def _checked_mask(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.size == 0:
        raise InputError("mask", f"must be a non-empty 2-D array, got shape {arr.shape}")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        raise InputError("mask", f"must hold integers or booleans, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() > 255:
        raise InputError("mask", f"values must lie in 0..255, got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


def write_mask_mha(path: str | os.PathLike, mask: np.ndarray, spacing: tuple[float, float] | None = None) -> Path:
    """Write a 2-D label map as ``.mha`` (or ``.nii`` / ``.nii.gz``), compressed, atomically.

    Parameters
    ----------
    path : str or path-like
        Destination; the extension picks the format.
    mask : ndarray, shape (H, W), integer or bool
        Label values in 0..255; stored as ``uint8``.
    spacing : tuple of float (sx, sy), optional
        Millimetres per pixel; ``None`` writes the format default of 1 (read back as unknown).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If the extension is not supported, ``mask`` is not a 2-D integer array in 0..255, or ``spacing``
        is not two positive finite numbers.
    """
    if not str(path).lower().endswith(MASK_VOLUME_EXTENSIONS):
        raise InputError(path, f"unsupported extension; expected one of {', '.join(MASK_VOLUME_EXTENSIONS)}")
    arr = _checked_mask(mask)
    img = sitk.GetImageFromArray(arr)
    if spacing is not None:
        sxy = checked_spacing(*spacing) if np.shape(spacing) == (2,) else None
        if sxy is None:
            raise InputError("spacing", f"must be two positive finite numbers (sx, sy) in mm, got {spacing!r}")
        img.SetSpacing(sxy)
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), True)
    return Path(path)


def dicom_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """Pixel spacing ``(sx, sy)`` in mm of a DICOM dataset, or ``None``.

    Looked up in order: ``PixelSpacing`` (also inside the shared functional groups of enhanced
    multi-frame files), ``ImagerPixelSpacing`` (both stored as *row, column* spacing, so
    ``sx = value[1]``, ``sy = value[0]``), then the first 2-D tissue region of
    ``SequenceOfUltrasoundRegions`` with ``PhysicalDeltaX/Y`` in centimetres (converted to mm).
    Missing, malformed or non-positive values are skipped.
    """
    candidates = [ds.get("PixelSpacing"), ds.get("ImagerPixelSpacing")]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        measures = shared[0].get("PixelMeasuresSequence")
        if measures:
            candidates.insert(1, measures[0].get("PixelSpacing"))
    for value in candidates:
        if value is not None and not isinstance(value, str | bytes) and np.shape(value) == (2,):
            sxy = checked_spacing(value[1], value[0])
            if sxy is not None:
                return sxy
    for region in ds.get("SequenceOfUltrasoundRegions") or []:
        if region.get("RegionSpatialFormat", 1) != 1:
            continue
        units = (
            region.get("PhysicalUnitsXDirection", _DICOM_UNIT_CM),
            region.get("PhysicalUnitsYDirection", _DICOM_UNIT_CM),
        )
        dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
        if units == (_DICOM_UNIT_CM, _DICOM_UNIT_CM) and dx is not None and dy is not None:
            sxy = checked_spacing(abs(float(dx)) * 10.0, abs(float(dy)) * 10.0)
            if sxy is not None:
                return sxy
    return None


def _dicom_gray(ds: pydicom.Dataset, arr: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1))
    if photometric == "PALETTE COLOR":
        return to_gray(apply_color_lut(arr, ds), order="rgb")
    if samples == 3:
        # YBR: the Y channel is the BT.601 luma already; RGB: luminance.
        return arr[..., 0] if photometric.startswith("YBR") else to_gray(arr, order="rgb")
    if samples != 1:
        raise InputError(path, f"unsupported SamplesPerPixel {samples}; expected 1 or 3")
    if photometric == "MONOCHROME1":  # 0 = white: invert so that bright means echogenic, as elsewhere
        if np.issubdtype(arr.dtype, np.signedinteger):
            return (-1 - arr).astype(arr.dtype)
        top = (1 << int(ds.get("BitsStored", arr.dtype.itemsize * 8))) - 1
        return (top - arr).astype(arr.dtype)
    return arr


def read_dicom(path: str | os.PathLike) -> ImageData:
    """Read a single- or multi-frame DICOM image with pydicom (uncompressed, or any syntax pydicom decodes).

    Colour is converted to gray: RGB by BT.601 luminance, YBR by taking its Y (luma) channel, palette
    colour through its lookup table. MONOCHROME1 is inverted so that bright means high echo, as in
    MONOCHROME2. Stored values are returned as they are (no modality or VOI LUT).

    Parameters
    ----------
    path : str or path-like
        The DICOM file (with the 128-byte preamble and ``DICM`` marker).

    Returns
    -------
    ImageData
        ``(H, W)`` pixels, or ``(F, H, W)`` for ``NumberOfFrames > 1``; ``pixel_spacing`` from
        :func:`dicom_spacing`.

    Raises
    ------
    InputError
        If the file is missing, empty, not DICOM, has no pixel data, or its pixel data cannot be decoded
        (truncated, or a compressed syntax without a decoder installed).
    """
    p = check_file(path)
    try:
        ds = pydicom.dcmread(p)
    except InvalidDicomError as exc:
        raise InputError(path, "not a DICOM file (no 'DICM' marker at byte 128)") from exc
    except Exception as exc:  # pydicom raises many types on malformed headers; keep the cause chained
        raise InputError(path, f"unreadable DICOM header ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds:
        raise InputError(path, "no pixel data (truncated file, or a DICOM object without an image)")
    try:
        arr = pixel_array(ds, as_rgb=False)
    except Exception as exc:  # decoder and length errors come as ValueError/RuntimeError/NotImplementedError
        raise InputError(path, f"cannot decode pixel data ({type(exc).__name__}: {exc})") from exc
    return image_data(_dicom_gray(ds, arr, path), dicom_spacing(ds), path)
