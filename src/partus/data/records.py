"""Training records held in memory: image, landmarks (original pixels), optional mask, split group.

Loaders for PSFHS folders (psfhs-dev layout or the original ``.mha`` release), IUGC 2025 landmark CSVs
and synthetic phantoms. NumPy/OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PSEUDO", "Record", "load_iugc2025", "load_phantoms", "load_psfhs"]

#: Prefix of the names and groups of pseudo-labelled records (never mixed up with annotated scans).
PSEUDO = "pseudo:"


@dataclass(frozen=True)
class Record:
    """One training image: ``image`` (H x W uint8), ``points`` (3, 2) ``(x, y)`` of PS1, PS2, FH1 in
    original pixels, ``mask`` (H x W uint8 0/1/2) or None, ``group`` for grouped splits, and ``weight``, the
    sample's loss weight (pseudo-labels train with less than the annotated scans' 1)."""

    name: str
    image: np.ndarray
    points: np.ndarray
    mask: np.ndarray | None = None
    group: str | None = None
    weight: float = 1.0


def load_psfhs(root: str | Path, *, limit: int | None = None) -> list[Record]:
    """PSFHS / FH-PS-AoP 2023 folder; landmarks from ``landmarks.csv`` when present, else from the masks
    by the official rule; groups from ``manifest.csv`` (``near_dup_cluster``) when present."""
    from ..geometry import landmarks_from_mask
    from ..io import as_gray_uint8, read_any, read_label_map, read_landmarks_csv, read_psfhs

    root = Path(root)
    samples = read_psfhs(root)[:limit]
    table = read_landmarks_csv(root / "landmarks.csv") if (root / "landmarks.csv").is_file() else {}
    out = []
    for s in samples:
        img = read_any(s.image_path).pixels
        mask = read_label_map(s.label_path) if s.label_path is not None else None
        pts = table.get(s.image_path.name)
        if pts is None:
            pts = table.get(f"{s.id}.png")
        if pts is None:
            if mask is None:
                raise ValueError(f"{s.image_path}: no landmarks in landmarks.csv and no mask to derive them")
            pts = landmarks_from_mask(mask).to_array()
        out.append(Record(s.id, as_gray_uint8(img, str(s.image_path)), np.asarray(pts, float), mask, s.group))
    return out


def load_iugc2025(images: str | Path, csv: str | Path, *, limit: int | None = None) -> list[Record]:
    """IUGC 2025 images with their ``Filename,PS1,PS2,FH1`` CSV (no masks; each image its own group)."""
    from ..errors import InputError
    from ..io import as_gray_uint8, read_any, read_landmarks_csv

    table = read_landmarks_csv(csv)
    out = []
    for name, pts in list(table.items())[:limit]:
        path = Path(images) / name
        if not path.is_file():
            raise InputError(csv, f"row {name!r}: image {path} not found")
        out.append(Record(Path(name).stem, as_gray_uint8(read_any(path).pixels, str(path)), np.asarray(pts, float)))
    return out


def load_phantoms(n: int, *, seed: int = 0, size: int = 256, mirrored_fraction: float = 0.0) -> list[Record]:
    """Synthetic phantoms (see :mod:`partus.data.synthetic`)."""
    from .synthetic import make_phantoms

    return [
        Record(f"phantom{i:05d}", p.image, p.landmarks.to_array(), p.label_map, None)
        for i, p in enumerate(make_phantoms(n, seed=seed, size=size, mirrored_fraction=mirrored_fraction))
    ]
