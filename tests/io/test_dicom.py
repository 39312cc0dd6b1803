import numpy as np
import pytest
from _helpers import make_dicom
from pydicom.dataset import Dataset

from partus.errors import InputError
from partus.io import read_any, read_dicom

RNG = np.random.default_rng(2)


def test_single_frame_with_pixel_spacing(tmp_path):
    pixels = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    path = make_dicom(tmp_path / "a.dcm", pixels, PixelSpacing=[0.3, 0.2])  # (row, column)
    data = read_dicom(path)
    assert np.array_equal(data.pixels, pixels) and data.frames == 1
    assert data.pixel_spacing == (0.2, 0.3)  # (sx = column, sy = row)


def test_multi_frame_uint16(tmp_path):
    pixels = RNG.integers(0, 65536, (4, 5, 6), dtype=np.uint16)
    data = read_dicom(make_dicom(tmp_path / "m.dcm", pixels, frames=4))
    assert data.frames == 4 and data.pixels.dtype == np.uint16 and np.array_equal(data.pixels, pixels)
    assert data.pixel_spacing is None


def test_without_spacing(tmp_path):
    assert read_dicom(make_dicom(tmp_path / "n.dcm", np.zeros((3, 3), np.uint8))).pixel_spacing is None


def test_imager_pixel_spacing_fallback(tmp_path):
    path = make_dicom(tmp_path / "i.dcm", np.zeros((3, 3), np.uint8), ImagerPixelSpacing=[0.5, 0.4])
    assert read_dicom(path).pixel_spacing == (0.4, 0.5)


def _region(dx_cm, dy_cm, fmt=1, units=3):
    region = Dataset()
    region.RegionSpatialFormat = fmt
    region.PhysicalUnitsXDirection = units
    region.PhysicalUnitsYDirection = units
    region.PhysicalDeltaX = dx_cm
    region.PhysicalDeltaY = dy_cm
    return region


def test_ultrasound_regions_in_cm(tmp_path):
    regions = [_region(0.5, 0.5, fmt=3), _region(0.02, 0.025, units=4), _region(0.01, 0.015)]
    path = make_dicom(tmp_path / "u.dcm", np.zeros((3, 3), np.uint8), SequenceOfUltrasoundRegions=regions)
    assert read_dicom(path).pixel_spacing == pytest.approx((0.1, 0.15))  # first 2-D region in cm, -> mm


def test_pixel_spacing_wins_over_regions(tmp_path):
    path = make_dicom(
        tmp_path / "p.dcm",
        np.zeros((3, 3), np.uint8),
        PixelSpacing=[0.3, 0.3],
        SequenceOfUltrasoundRegions=[_region(1, 1)],
    )
    assert read_dicom(path).pixel_spacing == (0.3, 0.3)


def test_invalid_spacing_is_ignored(tmp_path):
    path = make_dicom(tmp_path / "z.dcm", np.zeros((3, 3), np.uint8), PixelSpacing=[0, 0])
    assert read_dicom(path).pixel_spacing is None


def test_rgb_to_gray(tmp_path):
    rgb = np.zeros((2, 3, 4, 3), np.uint8)
    rgb[..., 1] = 100
    data = read_dicom(make_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB", frames=2))
    assert data.pixels.shape == (2, 3, 4) and np.all(data.pixels == round(0.587 * 100))


def test_ybr_takes_luma(tmp_path):
    ybr = np.zeros((3, 4, 3), np.uint8)
    ybr[..., 0], ybr[..., 1], ybr[..., 2] = 90, 128, 128
    data = read_dicom(make_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL"))
    assert data.pixels.shape == (3, 4) and np.all(data.pixels == 90)


def test_monochrome1_inverted(tmp_path):
    pixels = np.array([[0, 255], [10, 20]], np.uint8)
    data = read_dicom(make_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1"))
    assert data.pixels.tolist() == [[255, 0], [245, 235]]


def test_read_any_dispatch_and_sniffing(tmp_path):
    pixels = RNG.integers(0, 256, (4, 4), dtype=np.uint8)
    make_dicom(tmp_path / "IM0001", pixels)
    make_dicom(tmp_path / "1.2.840.113619", pixels)
    make_dicom(tmp_path / "x.DCM", pixels)
    for name in ("IM0001", "1.2.840.113619", "x.DCM"):
        assert np.array_equal(read_any(tmp_path / name).pixels, pixels)


def test_truncated_pixel_data(tmp_path):
    path = make_dicom(tmp_path / "cut.dcm", RNG.integers(0, 256, (16, 16), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(InputError, match=r"cut\.dcm: cannot decode pixel data"):
        read_dicom(path)


def test_truncated_header(tmp_path):
    path = make_dicom(tmp_path / "head.dcm", np.zeros((16, 16), np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match=r"head\.dcm: (no pixel data|unreadable DICOM header)"):
        read_any(path)


def test_not_dicom(tmp_path):
    path = tmp_path / "text.dcm"
    path.write_text("hello" * 100)
    with pytest.raises(InputError, match=r"text\.dcm: not a DICOM file"):
        read_dicom(path)


def test_no_pixel_data(tmp_path):
    path = make_dicom(tmp_path / "np.dcm", np.zeros((2, 2), np.uint8))
    from pydicom import dcmread

    ds = dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(InputError, match=r"np\.dcm: no pixel data"):
        read_dicom(path)


def test_missing_and_empty(tmp_path):
    with pytest.raises(InputError, match=r"gone\.dcm: file not found"):
        read_dicom(tmp_path / "gone.dcm")
    (tmp_path / "e.dcm").touch()
    with pytest.raises(InputError, match=r"e\.dcm: file is empty"):
        read_dicom(tmp_path / "e.dcm")


def test_single_valued_pixel_spacing_is_ignored(tmp_path):
    path = make_dicom(tmp_path / "s.dcm", np.zeros((3, 3), np.uint8), PixelSpacing=0.3, ImagerPixelSpacing=[0.2, 0.1])
    assert read_dicom(path).pixel_spacing == (0.1, 0.2)
