import numpy as np
import pytest

from partus.errors import InputError
from partus.io import read_label_map, to_internal_labels, write_mask_mha


def _mask(ps_value, fh_value, ps_area=4, fh_area=12):
    arr = np.zeros((6, 6), np.uint8)
    arr.flat[:ps_area] = ps_value
    arr.flat[20 : 20 + fh_area] = fh_value
    return arr


def _expected(ps_area=4, fh_area=12):
    return _mask(1, 2, ps_area, fh_area)


@pytest.mark.parametrize("scheme", ["auto", "psfhs"])
def test_psfhs_values_unchanged(scheme):
    assert np.array_equal(to_internal_labels(_mask(1, 2), scheme=scheme), _expected())


@pytest.mark.parametrize("scheme", ["auto", "iugc2024"])
def test_iugc2024_train_values(scheme):
    out = to_internal_labels(_mask(7, 8), scheme=scheme)
    assert out.dtype == np.uint8 and np.array_equal(out, _expected())


@pytest.mark.parametrize(("ps_value", "fh_value"), [(127, 255), (255, 127)])
def test_iugc2024_eval_values_by_area(ps_value, fh_value):
    assert np.array_equal(to_internal_labels(_mask(ps_value, fh_value)), _expected())
    assert np.array_equal(to_internal_labels(_mask(ps_value, fh_value), scheme="iugc2024"), _expected())


def test_background_only():
    assert not to_internal_labels(np.zeros((3, 3), np.uint8)).any()
    assert not to_internal_labels(np.zeros((3, 3), np.uint8), scheme="iugc2024").any()


def test_explicit_mapping():
    out = to_internal_labels(_mask(255, 0), mapping={255: 2})
    assert set(np.unique(out)) == {0, 2}


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        (
            _mask(7, 8),
            {"scheme": "psfhs"},
            r"m\.png: unknown label values: found \[0, 7, 8\], scheme 'psfhs' expects 0/1/2",
        ),
        (_mask(1, 2), {"scheme": "iugc2024"}, r"found \[0, 1, 2\], scheme 'iugc2024' expects 0/7/8 or 0/127/255"),
        (_mask(1, 9), {}, r"unknown label values: found \[0, 1, 9\]"),
        (_mask(255, 0), {}, r"only one foreground value \(255\)"),
        (_mask(127, 255, 8, 8), {}, r"cannot tell PS from FH by area: values 127 and 255 both cover 8 pixels"),
        (_mask(5, 0), {"mapping": {4: 1}}, r"label values \[5\] are not in mapping"),
        (_mask(5, 0), {"mapping": {5: 3}}, r"mapping: targets must be partus values"),
        (np.zeros((2, 2, 2), np.uint8), {}, r"label map must be a 2-D integer array"),
        (np.zeros((2, 2), np.float32), {}, r"label map must be a 2-D integer array"),
    ],
)
def test_errors(values, kwargs, match):
    with pytest.raises(InputError, match=match):
        to_internal_labels(values, source="m.png", **kwargs)


def test_unknown_scheme():
    with pytest.raises(ValueError, match="scheme must be one of 'auto', 'psfhs', 'iugc2024', got 'voc'"):
        to_internal_labels(_mask(1, 2), scheme="voc")


def test_read_label_map_png_and_mha(tmp_path, write_image):
    png = write_image("m.png", _mask(7, 8))
    assert np.array_equal(read_label_map(png), _expected())
    mha = write_mask_mha(tmp_path / "m.mha", _mask(1, 2))
    assert np.array_equal(read_label_map(mha, scheme="psfhs"), _expected())


def test_read_label_map_names_file(write_image):
    path = write_image("odd.png", _mask(3, 4))
    with pytest.raises(InputError, match=r"odd\.png: unknown label values: found \[0, 3, 4\]"):
        read_label_map(path)


def test_read_label_map_rejects_multi_frame(tmp_path):
    import SimpleITK as sitk

    path = tmp_path / "stack.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) % 3), str(path))
    with pytest.raises(InputError, match=r"stack\.mha: a label map must be one 2-D image, got 2 frames"):
        read_label_map(path)
