import numpy as np
import pytest
import SimpleITK as sitk

from partus.errors import InputError
from partus.io import read_any, read_medical, write_mask_mha

RNG = np.random.default_rng(1)


def _write_itk(path, array, spacing=None, vector=False):
    img = sitk.GetImageFromArray(array, isVector=vector)
    if spacing is not None:
        img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


@pytest.mark.parametrize("name", ["m.mha", "m.nii", "m.nii.gz"])
def test_write_read_mask_round_trip(tmp_path, name):
    mask = RNG.integers(0, 3, (12, 20)).astype(np.int64)
    path = write_mask_mha(tmp_path / name, mask, spacing=(0.2, 0.3))
    data = read_medical(path)
    assert data.pixels.dtype == np.uint8 and np.array_equal(data.pixels, mask)
    assert data.pixel_spacing == pytest.approx((0.2, 0.3))
    assert data.frames == 1


def test_unit_spacing_is_unknown_unless_trusted(tmp_path):
    path = write_mask_mha(tmp_path / "u.mha", np.zeros((4, 4), np.uint8))
    assert read_medical(path).pixel_spacing is None
    assert read_medical(path, trust_unit_spacing=True).pixel_spacing == (1.0, 1.0)


def test_psfhs_like_three_identical_slices_collapse(tmp_path):
    gray = RNG.integers(0, 256, (8, 9), dtype=np.uint8)
    data = read_medical(_write_itk(tmp_path / "img.mha", np.stack([gray] * 3)))
    assert data.pixels.shape == (8, 9) and np.array_equal(data.pixels, gray) and data.frames == 1


def test_differing_slices_are_frames(tmp_path):
    stack = RNG.integers(0, 256, (4, 8, 9), dtype=np.uint8)
    data = read_any(_write_itk(tmp_path / "cine.mha", stack, spacing=(0.5, 0.25, 1.0)))
    assert data.frames == 4 and np.array_equal(data.pixels, stack)
    assert data.pixel_spacing == (0.5, 0.25)


def test_vector_rgb_to_gray(tmp_path):
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 200
    data = read_medical(_write_itk(tmp_path / "rgb.mha", rgb, vector=True))
    assert data.pixels.shape == (3, 4) and np.all(data.pixels == round(0.299 * 200))


def test_uint16_kept(tmp_path):
    arr = RNG.integers(0, 65536, (5, 5), dtype=np.uint16)
    data = read_medical(_write_itk(tmp_path / "d.nii.gz", arr))
    assert data.pixels.dtype == np.uint16 and np.array_equal(data.pixels, arr)


def test_4d_rejected(tmp_path):
    path = _write_itk(tmp_path / "v.mha", np.zeros((2, 2, 3, 3), np.uint8))
    with pytest.raises(InputError, match=r"v\.mha: expected a 2-D image or a stack"):
        read_medical(path)


def test_text_renamed_mha(tmp_path):
    path = tmp_path / "fake.mha"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"fake\.mha: cannot be read as a medical image"):
        read_medical(path)


def test_truncated_mha(tmp_path):
    path = write_mask_mha(tmp_path / "t.mha", RNG.integers(0, 3, (64, 64)))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(InputError, match=r"t\.mha: cannot be read as a medical image"):
        read_medical(path)


def test_mhd_missing_raw(tmp_path):
    path = _write_itk(tmp_path / "h.mhd", np.zeros((3, 3), np.uint8))
    (tmp_path / "h.raw").unlink()
    with pytest.raises(InputError, match=r"h\.mhd: cannot be read"):
        read_any(path)


def test_missing_and_empty(tmp_path):
    with pytest.raises(InputError, match=r"gone\.mha: file not found"):
        read_medical(tmp_path / "gone.mha")
    (tmp_path / "e.nii.gz").touch()
    with pytest.raises(InputError, match=r"e\.nii\.gz: file is empty"):
        read_any(tmp_path / "e.nii.gz")


@pytest.mark.parametrize(
    ("name", "mask", "spacing", "match"),
    [
        ("m.png", np.zeros((2, 2), np.uint8), None, r"m\.png: unsupported extension"),
        ("m.mhd", np.zeros((2, 2), np.uint8), None, r"m\.mhd: unsupported extension"),
        ("m.mha", np.zeros((2, 2, 2), np.uint8), None, r"mask: must be a non-empty 2-D array"),
        ("m.mha", np.zeros((2, 2), np.float32), None, r"mask: must hold integers"),
        ("m.mha", np.full((2, 2), 300), None, r"mask: values must lie in 0\.\.255"),
        ("m.mha", np.zeros((2, 2), np.uint8), (0.0, 1.0), r"spacing: must be two positive finite"),
        ("m.mha", np.zeros((2, 2), np.uint8), (1.0,), r"spacing: must be two positive finite"),
    ],
)
def test_write_mask_mha_errors(tmp_path, name, mask, spacing, match):
    with pytest.raises(InputError, match=match):
        write_mask_mha(tmp_path / name, mask, spacing)
    assert list(tmp_path.iterdir()) == []
