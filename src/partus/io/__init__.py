"""Reading and writing images, masks, landmark tables and videos.

Readers raise :class:`partus.errors.InputError` naming the file and the problem; writers are atomic
(a reader never sees a half-written file). Points are ``(x, y)`` pixels; pixel spacing is ``(sx, sy)``
in mm per pixel or ``None``; label maps use partus values 0 background, 1 PS, 2 FH.
"""

from ._atomic import atomic_path, atomic_write
from ._pixels import ImageData
from .datasets import (
    Sample,
    iter_iugc2024_frames,
    list_videos,
    parse_iugc2024_name,
    read_iugc2024_landmarks,
    read_psfhs,
)
from .images import as_gray_uint8, normalize_to_uint8, read_any, read_image
from .labels import LabelScheme, read_label_map, to_internal_labels
from .medical import dicom_spacing, read_dicom, read_medical, write_mask_mha
from .tables import PredictionRow, read_aop_csv, read_landmarks_csv, read_manifest, read_predictions_csv
from .video import VideoInfo, iter_video_frames, read_video_range, video_info
from .writers import encode_png, file_stem, write_json, write_mask, write_png, write_predictions_csv

__all__ = [
    "ImageData",
    "LabelScheme",
    "PredictionRow",
    "Sample",
    "VideoInfo",
    "atomic_path",
    "as_gray_uint8",
    "atomic_write",
    "dicom_spacing",
    "encode_png",
    "file_stem",
    "iter_iugc2024_frames",
    "iter_video_frames",
    "read_video_range",
    "list_videos",
    "normalize_to_uint8",
    "parse_iugc2024_name",
    "read_any",
    "read_aop_csv",
    "read_dicom",
    "read_image",
    "read_iugc2024_landmarks",
    "read_label_map",
    "read_landmarks_csv",
    "read_manifest",
    "read_medical",
    "read_predictions_csv",
    "read_psfhs",
    "to_internal_labels",
    "video_info",
    "write_json",
    "write_mask",
    "write_mask_mha",
    "write_png",
    "write_predictions_csv",
]
