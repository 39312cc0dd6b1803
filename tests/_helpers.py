"""Test helpers shared by several test modules (importable: ``tests`` is on pytest's pythonpath)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, UltrasoundMultiFrameImageStorage, generate_uid

SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "src" / "partus" / "samples" / "psfhs" / "images"


def make_dicom(path, pixels, *, photometric="MONOCHROME2", frames=None, **tags):
    """Write an uncompressed Explicit VR Little Endian DICOM holding ``pixels`` (frames first, channels last)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage if frames else UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    colour = photometric in ("RGB", "YBR_FULL")
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    shape = pixels.shape[:-1] if colour else pixels.shape
    ds.Rows, ds.Columns = shape[-2:]
    if frames:
        ds.NumberOfFrames = frames
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def sample_frames() -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(SAMPLE_IMAGES.glob("*.png"))]


def write_sample_video(path: Path, n: int, fourcc: str = "MJPG") -> list[np.ndarray]:
    """A clip cycling through the bundled samples, drifting by a pixel a frame; returns what was written."""
    frames = sample_frames()
    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (w, h))
    out = []
    for i in range(n):
        f = np.roll(cv2.resize(frames[i % len(frames)], (w, h)), i % 7, axis=1)
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
        out.append(f)
    writer.release()
    return out


#: A refiner small and quick enough for tests: 2 epochs, 48-px windows of the scan at 128 px, 4 features.
REFINE_SETTINGS = ["refine.epochs=2", "refine.work=128", "refine.crop=48", "refine.features=4"]


def without_refiner(onnx: Path) -> Path:
    """A copy of the exported network ``onnx`` in a folder of its own (``bare/`` beside it), no refiner beside it."""
    bare = onnx.parent / "bare"
    bare.mkdir()
    return Path(shutil.copy(onnx, bare / onnx.name))


class SpikeSession:
    """A refiner's ONNX session stand-in whose PS1 map (and PS2 map, and FH1 map) has all its mass on one grid cell."""

    def __init__(self, cell, *more):
        self.cells = (cell, *more) if more else (cell, cell)

    def run(self, _names, feeds):
        n = feeds["image"].shape[0]
        logits = np.zeros((n, len(self.cells), 24, 24), np.float32)
        for k, (x, y) in enumerate(self.cells):
            logits[:, k, y, x] = 60.0
        return [logits]
