"""Reading 2-D image files (PNG, JPEG, BMP, TIFF) and dispatching any supported file to its reader.

Pixels keep the file's bit depth: 8-bit files give ``uint8``, 16-bit files ``uint16``; nothing is
rescaled unless you call :func:`normalize_to_uint8`. Colour is converted to gray by BT.601 luminance
(``0.299 R + 0.587 G + 0.114 B``, rounded), so gray images stored as RGB come back unchanged; an alpha
channel is dropped. EXIF orientation is ignored: pixels are in the order stored in the file, the same
order landmark coordinates refer to. Files are read as bytes and decoded with OpenCV, so non-ASCII paths
work on every platform.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ._pixels import ImageData, check_file, image_data, read_bytes, to_gray
from .medical import read_dicom, read_medical

#: Extensions read by :func:`read_image`.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Extensions read by :func:`partus.io.read_medical`.
MEDICAL_EXTENSIONS = (".mha", ".mhd", ".nii", ".nii.gz")
#: Extensions read by :func:`partus.io.read_dicom` (files without an extension are sniffed).
DICOM_EXTENSIONS = (".dcm", ".dicom")

#: Leading bytes of the raster formats :func:`read_image` decodes.
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"BM": "bmp",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
}


def image_format(head: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"bmp"`` or ``"tiff"`` from a file's first bytes; None for anything else."""
    return next((fmt for sig, fmt in _SIGNATURES.items() if head.startswith(sig)), None)


#: Largest image :func:`read_image` decodes; a header declaring more pixels is refused before decoding.
MAX_PIXELS = 100_000_000


def declared_size(data: bytes, source: str | os.PathLike = "image") -> tuple[int, int] | None:
    """``(height, width)`` that a PNG/JPEG/BMP/TIFF header declares, read without decoding pixels (Pillow);
    None if Pillow cannot read the header (the decoder then gets to say what is wrong)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except Image.DecompressionBombError as exc:  # Pillow's own guard: far above MAX_PIXELS
        raise InputError(source, f"image too large to decode ({exc})") from None
    except Exception:  # noqa: BLE001 - Pillow raises many types on headers it cannot read
        return None
    return int(h), int(w)


def read_image(path: str | os.PathLike, *, as_gray: bool = True) -> np.ndarray:
    """Read a PNG, JPEG, BMP or TIFF file (8- or 16-bit; gray, RGB or RGBA).

    Parameters
    ----------
    path : str or path-like
        The image file. Multi-page TIFFs give their first page.
    as_gray : bool, default True
        Return gray pixels (BT.601 luminance of colour files); otherwise RGB.

    Returns
    -------
    ndarray, shape (H, W) if ``as_gray`` else (H, W, 3), dtype uint8 or uint16
        The pixels, with the file's bit depth. RGB output is in R, G, B order (not OpenCV's BGR); gray
        files are repeated over the three channels. Alpha is always dropped.

    Raises
    ------
    InputError
        If the file is missing, empty, not a decodable image (truncated, or another kind of file), has
        zero size, declares more than :data:`MAX_PIXELS` pixels (checked before decoding), or has a pixel
        type other than 8- or 16-bit unsigned.

    Examples
    --------
    >>> import numpy as np, cv2, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.png"
    >>> _ = p.write_bytes(cv2.imencode(".png", np.full((2, 3), 7, np.uint8))[1].tobytes())
    >>> read_image(p).shape
    (2, 3)
    """
    data = read_bytes(path)
    size = declared_size(data, path)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise InputError(path, f"image declares {size[1]}x{size[0]} pixels, more than the {MAX_PIXELS:,} allowed")
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InputError(path, f"could not be decoded: {str(exc).strip().splitlines()[-1]}") from None
    if pixels is None:
        raise InputError(path, "not a decodable image (truncated or not an image file)")
    if pixels.size == 0:
        raise InputError(path, f"image has zero size (shape {pixels.shape})")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise InputError(path, f"unsupported pixel type {pixels.dtype}; expected 8- or 16-bit unsigned")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        return pixels if as_gray else np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InputError(path, f"unsupported pixel layout {pixels.shape}; expected gray, RGB or RGBA")
    if as_gray:
        return to_gray(pixels, order="bgr")
    return np.ascontiguousarray(pixels[..., 2::-1])


def normalize_to_uint8(array: np.ndarray, *, method: str = "minmax") -> np.ndarray:
    """Convert pixels to ``uint8`` for display or for models trained on 8-bit images.

    Parameters
    ----------
    array : array_like
        Pixels of any real dtype. ``uint8`` input is returned unchanged.
    method : {"minmax", "shift"}, default "minmax"
        ``"minmax"`` stretches ``[min, max]`` of this array linearly to ``[0, 255]`` (rounded; a
        constant array gives zeros); contrast is comparable between images, absolute levels are not.
        ``"shift"`` keeps absolute levels: ``uint16`` values are divided by 256 (``v >> 8``); it is only
        defined for ``uint16``.

    Returns
    -------
    ndarray, dtype uint8
        Same shape as ``array``.

    Raises
    ------
    InputError
        If ``array`` is empty, not real-valued, contains NaN/inf, or ``method`` is unknown or not
        defined for its dtype.

    Examples
    --------
    >>> normalize_to_uint8(np.array([[1000, 2000], [3000, 5000]], np.uint16))
    array([[  0,  64],
           [128, 255]], dtype=uint8)
    """
    arr = np.asarray(array)
    if arr.size == 0:
        raise InputError("array", "is empty")
    if arr.dtype == np.uint8:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError("array", f"must hold real numbers, got dtype {arr.dtype}")
    if method == "shift":
        if arr.dtype != np.uint16:
            raise InputError("method", f"'shift' is only defined for uint16 input, got {arr.dtype}")
        return (arr >> 8).astype(np.uint8)
    if method != "minmax":
        raise InputError("method", f"must be 'minmax' or 'shift', got {method!r}")
    values = arr.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise InputError("array", "contains NaN or infinite values")
    lo, hi = values.min(), values.max()
    if hi == lo:
        return np.zeros(arr.shape, np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _kind_from_name(path: Path) -> str | None:
    name = path.name.lower()
    for kind, exts in (("image", IMAGE_EXTENSIONS), ("medical", MEDICAL_EXTENSIONS), ("dicom", DICOM_EXTENSIONS)):
        if any(name.endswith(ext) for ext in exts):
            return kind
    return None


def _kind_from_magic(path: str | os.PathLike) -> str:
    with check_file(path).open("rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM":
        return "dicom"
    if image_format(head) is not None:
        return "image"
    raise InputError(path, "no extension and not a recognised format (no DICOM 'DICM' marker, no image signature)")


def read_any(path: str | os.PathLike) -> ImageData:
    """Read any supported image file into an :class:`ImageData` (gray pixels plus pixel spacing).

    The reader is chosen by extension: PNG/JPEG/BMP/TIFF (:func:`read_image`, spacing ``None``),
    ``.mha``/``.mhd``/``.nii``/``.nii.gz`` (:func:`partus.io.read_medical`), ``.dcm``/``.dicom``
    (:func:`partus.io.read_dicom`). A file without an extension (or with a numeric one, as in DICOM
    files named by UID) is sniffed: the ``DICM`` marker at byte 128 means DICOM, a PNG/JPEG/BMP/TIFF
    signature means an image.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    ImageData
        ``pixels`` is ``(H, W)``, or ``(F, H, W)`` for multi-frame files; dtype as in the file.

    Raises
    ------
    InputError
        If the extension is not supported, the file is missing/empty/unreadable, or the reader rejects it.
    """
    p = Path(path)
    kind = _kind_from_name(p)
    if kind is None:
        if p.suffix and not p.suffix[1:].isdigit():
            supported = ", ".join(IMAGE_EXTENSIONS + MEDICAL_EXTENSIONS + DICOM_EXTENSIONS)
            raise InputError(path, f"unsupported extension {p.suffix!r}; supported: {supported}")
        kind = _kind_from_magic(path)
    if kind == "medical":
        return read_medical(path)
    if kind == "dicom":
        return read_dicom(path)
    return image_data(read_image(path, as_gray=True), None, path)


def as_gray_uint8(image: Any, source: str = "image") -> np.ndarray:
    """An image array as 8-bit gray: ``(H, W)`` of any real dtype (min-max stretched unless uint8), or
    ``(H, W, 3|4)`` RGB(A) (BT.601 luminance). Raises :class:`InputError` for anything else, NaN or
    infinite values included."""
    arr = np.asarray(image)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(source, f"pixels must be real numbers, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = to_gray(arr, order="rgb")
    if arr.ndim != 2:
        raise InputError(source, f"expected a 2-D gray image or (H, W, 3|4) colour pixels, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(source, f"image has zero size (shape {arr.shape})")
    return normalize_to_uint8(arr)
