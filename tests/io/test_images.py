import numpy as np
import pytest

from partus.errors import InputError
from partus.io import ImageData, normalize_to_uint8, read_any, read_image

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff"])
def test_gray_8bit_lossless_round_trip(write_image, ext):
    pixels = RNG.integers(0, 256, (17, 23), dtype=np.uint8)
    out = read_image(write_image("g" + ext, pixels))
    assert out.dtype == np.uint8 and np.array_equal(out, pixels)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_keeps_dtype_and_values(write_image, ext):
    pixels = RNG.integers(0, 65536, (9, 11), dtype=np.uint16)
    out = read_image(write_image("deep" + ext, pixels))
    assert out.dtype == np.uint16 and np.array_equal(out, pixels)


def test_16bit_rgb_to_gray_keeps_dtype(write_image):
    bgr = np.zeros((4, 5, 3), np.uint16)
    bgr[..., 2] = 60000  # red
    out = read_image(write_image("rgb16.png", bgr))
    assert out.dtype == np.uint16
    assert np.all(out == round(0.299 * 60000))


def test_rgb_luminance_and_rgb_order(write_image):
    bgr = np.zeros((3, 4, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 200  # B, G, R
    path = write_image("c.png", bgr)
    gray = read_image(path)
    assert gray.shape == (3, 4) and np.all(gray == round(0.299 * 200 + 0.587 * 20 + 0.114 * 10))
    rgb = read_image(path, as_gray=False)
    assert rgb.shape == (3, 4, 3) and tuple(rgb[0, 0]) == (200, 20, 10)


def test_identical_channels_give_the_channel_exactly(write_image):
    gray = RNG.integers(0, 256, (8, 8), dtype=np.uint8)
    assert np.array_equal(read_image(write_image("same.png", np.dstack([gray] * 3))), gray)


def test_rgba_drops_alpha(write_image):
    gray = RNG.integers(0, 256, (6, 7), dtype=np.uint8)
    alpha = np.zeros_like(gray)
    path = write_image("rgba.png", np.dstack([gray, gray, gray, alpha]))
    assert np.array_equal(read_image(path), gray)
    assert read_image(path, as_gray=False).shape == (6, 7, 3)


def test_gray_as_rgb_repeats_channels(write_image):
    gray = RNG.integers(0, 256, (5, 5), dtype=np.uint8)
    rgb = read_image(write_image("g.png", gray), as_gray=False)
    assert rgb.shape == (5, 5, 3) and all(np.array_equal(rgb[..., c], gray) for c in range(3))


def test_jpeg_reads(write_image):
    out = read_image(write_image("j.jpg", np.full((16, 16), 120, np.uint8)))
    assert out.shape == (16, 16) and abs(int(out.mean()) - 120) <= 2


def test_unicode_path(tmp_path, write_image):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = write_image("ünïcødé 图像.png", pixels)
    assert np.array_equal(read_image(path), pixels)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.png: file not found"):
        read_image(tmp_path / "nope.png")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png: file is empty"):
        read_image(path)


def test_directory(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(InputError, match=r"dir\.png: not a regular file"):
        read_image(tmp_path / "dir.png")


def test_text_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    with pytest.raises(InputError, match=r"notes\.png: not a decodable image \(truncated or not an image file\)"):
        read_image(path)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_truncated(write_image, ext):
    path = write_image("cut" + ext, RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"cut\{ext}: not a decodable image"):
        read_image(path)


def test_float_tiff_rejected(write_image):
    path = write_image("f.tif", np.ones((3, 3), np.float32))
    with pytest.raises(InputError, match=r"f\.tif: unsupported pixel type float32"):
        read_image(path)


# --- normalize_to_uint8 ----------------------------------------------------------------------------


def test_normalize_minmax_and_shift():
    arr = np.array([[1000, 2000], [3000, 5000]], np.uint16)
    assert normalize_to_uint8(arr).tolist() == [[0, 64], [128, 255]]
    assert normalize_to_uint8(arr, method="shift").tolist() == [[3, 7], [11, 19]]
    assert normalize_to_uint8(np.full((2, 2), 7, np.uint16)).tolist() == [[0, 0], [0, 0]]
    u8 = np.array([[1, 2]], np.uint8)
    assert normalize_to_uint8(u8) is u8
    assert normalize_to_uint8(np.array([-1.0, 1.0])).tolist() == [0, 255]


@pytest.mark.parametrize(
    ("array", "kwargs", "match"),
    [
        (np.zeros((0, 3), np.uint16), {}, "array: is empty"),
        (np.array([np.nan, 1.0]), {}, "array: contains NaN"),
        (np.array([1, 2], np.int16), {"method": "shift"}, "method: 'shift' is only defined for uint16"),
        (np.array([1, 2], np.uint16), {"method": "gamma"}, "method: must be 'minmax' or 'shift'"),
        (np.array(["a"]), {}, "array: must hold real numbers"),
    ],
)
def test_normalize_errors(array, kwargs, match):
    with pytest.raises(InputError, match=match):
        normalize_to_uint8(array, **kwargs)


# --- read_any --------------------------------------------------------------------------------------


def test_read_any_png(write_image):
    pixels = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    data = read_any(write_image("x.PNG", pixels))
    assert isinstance(data, ImageData)
    assert data.frames == 1 and data.pixel_spacing is None and np.array_equal(data.pixels, pixels)
    assert data.source.endswith("x.PNG")


def test_read_any_sniffs_image_without_extension(tmp_path, write_image):
    pixels = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    path = tmp_path / "noext"
    path.write_bytes(write_image("tmp.png", pixels).read_bytes())
    assert np.array_equal(read_any(path).pixels, pixels)


def test_read_any_unsupported_extension(tmp_path):
    path = tmp_path / "scan.gif"
    path.write_bytes(b"GIF89a")
    with pytest.raises(InputError, match=r"scan\.gif: unsupported extension '\.gif'; supported: \.png"):
        read_any(path)


def test_read_any_unrecognised_without_extension(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"just some bytes" * 20)
    with pytest.raises(InputError, match=r"blob: no extension and not a recognised format"):
        read_any(path)


def test_read_any_empty_without_extension(tmp_path):
    path = tmp_path / "blob"
    path.touch()
    with pytest.raises(InputError, match="blob: file is empty"):
        read_any(path)


def test_image_data_checks_frames():
    with pytest.raises(InputError, match="do not match frames=2"):
        ImageData(np.zeros((3, 3)), None, "x", frames=2)
