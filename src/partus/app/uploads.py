"""Checking uploaded bytes before anything decodes them: format by content (not by name or declared
type), and the declared image size read from the header, so a decompression bomb is refused before a
single pixel is allocated. Pure functions; the service maps :class:`UploadRejected` to HTTP codes."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from ..errors import InputError
from ..io.images import declared_size, image_format

__all__ = ["EXTENSIONS", "UploadRejected", "check_upload", "safe_name", "sniff"]

#: Extension given to the temporary file of each accepted format (read back by partus.io.read_any).
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "tiff": ".tif", "dicom": ".dcm", "mha": ".mha"}


@dataclass
class UploadRejected(Exception):
    """An upload the service refuses: ``status`` (413, 415 or 422) and a message for the user."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def sniff(data: bytes) -> str | None:
    """The format of ``data`` from its first bytes, or None if it is not one partus accepts."""
    raster = image_format(data)
    if raster is not None and (raster != "bmp" or len(data) >= 26):  # "BM" alone is too weak a signature
        return raster
    if data[128:132] == b"DICM":
        return "dicom"
    if re.match(rb"\s*(ObjectType|NDims)\s*=", data[:64]):
        return "mha"
    return None


def _mha_field(header: bytes, key: str) -> bytes | None:
    m = re.search(rb"^[ \t]*" + key.encode() + rb"[ \t]*=[ \t]*(.*?)[ \t]*$", header, re.MULTILINE)
    return None if m is None else m.group(1)


def _mha_shape(data: bytes) -> tuple[int, ...]:
    """Declared voxels of a MetaImage header (all dimensions, times channels), read like ITK does: values
    split on any whitespace, as many as NDims."""
    end = re.search(rb"^[ \t]*ElementDataFile[ \t]*=", data[:8192], re.MULTILINE)
    if end is None:
        raise UploadRejected(422, "MetaImage header without ElementDataFile (truncated or not .mha)")
    header = data[: data.find(b"\n", end.start()) + 1 or len(data)]
    if _mha_field(header, "ElementDataFile") != b"LOCAL":
        raise UploadRejected(422, "only self-contained .mha files (ElementDataFile = LOCAL) can be uploaded")
    try:
        ndims = int(_mha_field(header, "NDims") or b"")
        dims = tuple(int(v) for v in (_mha_field(header, "DimSize") or b"").split())
        channels = int(_mha_field(header, "ElementNumberOfChannels") or b"1")
    except ValueError:
        raise UploadRejected(422, "MetaImage header with unreadable NDims, DimSize or channels") from None
    if len(dims) != ndims or ndims < 2 or channels < 1:
        raise UploadRejected(422, f"MetaImage header: DimSize {dims} does not match NDims {ndims} (2-D or 3-D)")
    return (*dims[:1:-1], dims[1], dims[0] * channels)  # (z..., y, x * channels)


def _dicom_shape(data: bytes) -> tuple[int, ...]:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on malformed headers
        raise UploadRejected(422, f"unreadable DICOM header: {type(exc).__name__}") from None
    return (frames, rows, cols * samples)


def _raster_shape(data: bytes, kind: str) -> tuple[int, ...]:
    try:
        size = declared_size(data)
    except InputError as exc:
        raise UploadRejected(413, exc.problem) from None
    if size is None:
        raise UploadRejected(422, f"unreadable {kind.upper()} header")
    return size


def check_upload(data: bytes, *, max_pixels: int) -> tuple[str, int]:
    """Validate one upload; returns its format and the number of pixels (samples) its header declares.

    Raises
    ------
    UploadRejected
        415 when it is not an accepted format, 413 when its declared size exceeds ``max_pixels`` (a
        decompression-bomb guard), 422 when its header is unreadable or it is not a single 2-D image.
    """
    if not data:
        raise UploadRejected(422, "empty file")
    kind = sniff(data)
    if kind is None:
        raise UploadRejected(415, "not an accepted image: PNG, JPEG, BMP, TIFF, DICOM or MetaImage (.mha)")
    shape = _mha_shape(data) if kind == "mha" else _dicom_shape(data) if kind == "dicom" else _raster_shape(data, kind)
    if any(v <= 0 for v in shape):
        raise UploadRejected(422, f"image declares an empty size {shape}")
    if len(shape) > 3:
        raise UploadRejected(422, f"{len(shape)}-D image: upload one 2-D frame")
    pixels = 1
    for v in shape:
        pixels *= v
    if pixels > max_pixels:
        size = "x".join(str(v) for v in shape)
        raise UploadRejected(413, f"image declares {size} = {pixels:,} pixels, more than the {max_pixels:,} allowed")
    return kind, pixels


def safe_name(name: str | None, limit: int = 120) -> str:
    """A display-only version of a client's file name (never used as a path)."""
    text = "".join(c for c in (name or "upload") if c.isprintable() and c not in "/\\")
    return (text or "upload")[:limit]
