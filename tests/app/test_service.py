"""The HTTP service in-process: API results equal the library's, every refusal has the right code and a
message, per-request temporary folders are always removed, and the token guards /v1."""

from __future__ import annotations

import base64
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk
from _helpers import make_dicom

from partus.app.uploads import UploadRejected, check_upload, safe_name, sniff
from partus.predict import load_model

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from partus.app import create_app

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "partus" / "samples" / "psfhs"
PNG = (SAMPLES / "images" / "03744.png").read_bytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture
def work(tmp_path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def client(work):
    work.mkdir()
    with TestClient(create_app(load_model(), tmp_root=work, max_upload_mb=2, max_pixels=1_000_000)) as c:
        yield c
    assert list(work.iterdir()) == [], "a request left files behind"


def _post(client, *files, headers=None, **params):
    return client.post("/v1/measure", files=[("files", f) for f in files], headers=headers or {}, params=params)


def test_health_and_docs(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["model"] == load_model().id and h["auth"] is False
    assert "/v1/measure" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "research tool, not a medical device" in page.text.lower()


def test_measure_png_matches_the_library_and_returns_an_overlay(client):
    res = _post(client, ("03744.png", PNG, "image/png"))
    assert res.status_code == 200, res.text
    (r,) = res.json()["results"]
    m = load_model().measure(SAMPLES / "images" / "03744.png")
    assert r["status"] == "ok" and r["aop_deg"] == pytest.approx(m.aop) and r["hsd"] == pytest.approx(m.hsd)
    assert r["landmarks"]["PS1"] == list(m.landmarks.ps1) and r["hsd_unit"] == "px"
    overlay = cv2.imdecode(np.frombuffer(base64.b64decode(r["overlay_png"]), np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape[0] >= 512 and overlay.std() > 20
    assert "overlay_png" not in _post(client, ("a.png", PNG, "image/png"), overlay=False).json()["results"][0]


def test_measure_dicom_with_spacing_gives_mm_and_several_files_in_one_request(client, tmp_path):
    pixels = cv2.imread(str(SAMPLES / "images" / "04050.png"), cv2.IMREAD_GRAYSCALE)
    dcm = make_dicom(tmp_path / "a.dcm", pixels, PixelSpacing=[0.25, 0.25]).read_bytes()
    mha = (SAMPLES / "mha" / "03744_image.mha").read_bytes()
    res = _post(client, ("a.dcm", dcm, "application/dicom"), ("b.mha", mha, "application/octet-stream"),
                ("c.png", PNG, "image/png"))  # fmt: skip
    assert res.status_code == 200, res.text
    a, b, c = res.json()["results"]
    assert a["hsd_unit"] == "mm" and a["format"] == "dicom"
    px = load_model().measure(pixels)
    assert a["hsd"] == pytest.approx(0.25 * px.hsd) and a["aop_deg"] == pytest.approx(px.aop)
    assert b["aop_deg"] == pytest.approx(c["aop_deg"])


def test_blank_image_is_a_not_measurable_result_not_an_error(client):
    ok, buf = cv2.imencode(".png", np.zeros((200, 200), np.uint8))
    (r,) = _post(client, ("blank.png", buf.tobytes(), "image/png")).json()["results"]
    assert r["status"] == "not measurable" and "blank" in r["reason"] and r["aop_deg"] is None


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("notes.txt", b"hello, this is text", 415, "not an accepted image"),
        ("page.png", b"<html><body>hi</body></html>", 415, "not an accepted image"),
        ("empty.png", b"", 422, "empty file"),
        ("cut.png", PNG[:60], 422, "could not decode"),
        ("head.png", PNG[:8] + b"\0" * 30, 422, "unreadable PNG header"),
        (
            "huge.png",
            PNG[:8] + _chunk(b"IHDR", struct.pack(">IIBBBBB", 5000, 5000, 8, 0, 0, 0, 0)) + PNG[33:],
            413,
            "more than the 1,000,000 allowed",
        ),
    ],
)
def test_refusals_have_codes_and_messages(client, name, data, status, message):
    res = _post(client, (name, data, "image/png"))
    assert res.status_code == status, res.text
    assert message in res.json()["detail"] and name in res.json()["detail"]


def test_upload_size_limit_is_413_by_header_and_by_stream(client):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 2**20)
    res = _post(client, ("big.png", big, "image/png"))
    assert res.status_code == 413 and "larger than 2 MiB" in res.json()["detail"]

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        yield b"--x\r\nContent-Disposition: form-data; name=files; filename=a.png\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 2**16

    res = client.post("/v1/measure", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert res.status_code == 413


def test_multi_frame_and_3d_uploads_are_refused(client, tmp_path):
    stack = np.stack([cv2.imread(str(SAMPLES / "images" / "03744.png"), cv2.IMREAD_GRAYSCALE)[:100, :100]] * 5)
    sitk.WriteImage(sitk.GetImageFromArray(stack), str(tmp_path / "s.mha"))
    res = _post(client, ("s.mha", (tmp_path / "s.mha").read_bytes(), "application/octet-stream"))
    assert res.status_code == 422 and "5 frames" in res.json()["detail"]


def test_filenames_are_never_paths(client, work):
    res = _post(client, ("../../../../tmp/evil\x00name.png", PNG, "image/png"))
    assert res.status_code == 200
    shown = res.json()["results"][0]["filename"]
    assert "/" not in shown and shown.startswith("........tmpevil") and shown.endswith("name.png")
    assert not Path("/tmp/evil").exists() and list(work.iterdir()) == []


def test_too_many_files_and_missing_field(client):
    with TestClient(create_app(load_model(), max_files=2)) as c:
        res = _post(c, *[(f"{i}.png", PNG, "image/png") for i in range(3)])
        assert res.status_code == 413 and "at most 2" in res.json()["detail"]
    assert client.post("/v1/measure", files={"file": ("a.png", PNG)}).status_code == 422
    assert client.post("/v1/measure", json={"x": 1}).status_code == 422


def test_float_volume_with_nan_is_a_422_not_a_500(client, tmp_path):
    arr = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    arr[3, 3] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "nan.mha"))
    res = _post(client, ("nan.mha", (tmp_path / "nan.mha").read_bytes(), "application/octet-stream"))
    assert res.status_code == 422 and "NaN" in res.json()["detail"]


def test_request_pixel_budget_bounds_memory_across_files(work):
    work.mkdir()
    with TestClient(create_app(load_model(), max_pixels=100_000, tmp_root=work)) as c:  # 2 x 100k in all
        res = _post(c, *[(f"{i}.png", PNG, "image/png") for i in range(4)])  # 4 x 65,536 declared
        assert res.status_code == 413 and "in all" in res.json()["detail"]
        assert _post(c, ("a.png", PNG, "image/png"), ("b.png", PNG, "image/png")).status_code == 200


def test_bearer_token_guards_the_api_not_the_page(tmp_path):
    with TestClient(create_app(load_model(), token="s3cret")) as c:
        assert c.get("/healthz").json()["auth"] is True and c.get("/").status_code == 200
        res = _post(c, ("a.png", PNG, "image/png"))
        assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
        big = b"\x89PNG\r\n\x1a\n" + b"\0" * (30 * 2**20)  # refused before the body is read
        assert _post(c, ("big.png", big, "image/png")).status_code == 401
        assert _post(c, ("a.png", PNG, "image/png"), headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert _post(c, ("a.png", PNG, "image/png"), headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_sniffing_and_header_checks_need_no_decoding(tmp_path):
    assert sniff(PNG) == "png" and sniff(b"\xff\xd8\xff\xe0") == "jpeg" and sniff(b"GIF89a") is None
    assert sniff(b"\0" * 128 + b"DICM") == "dicom" and sniff(b"ObjectType = Image\n") == "mha"
    assert check_upload(PNG, max_pixels=256 * 256) == ("png", 256 * 256)
    with pytest.raises(UploadRejected) as exc:
        check_upload(PNG, max_pixels=256 * 256 - 1)
    assert exc.value.status == 413
    bomb = make_dicom(tmp_path / "b.dcm", np.zeros((2, 2), np.uint8)).read_bytes()
    bomb = bomb.replace(struct.pack("<HHHH", 0x0028, 0x0010, 0x5355, 2) + struct.pack("<H", 2),
                        struct.pack("<HHHH", 0x0028, 0x0010, 0x5355, 2) + struct.pack("<H", 60000))  # fmt: skip
    with pytest.raises(UploadRejected) as exc:
        check_upload(bomb, max_pixels=10**5)  # declares 60000 x 2 pixels
    assert exc.value.status == 413
    mha = b"ObjectType = Image\nNDims = 2\nDimSize = 90000 90000\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
    with pytest.raises(UploadRejected, match="more than"):
        check_upload(mha, max_pixels=10**6)
    with pytest.raises(UploadRejected, match="LOCAL"):
        check_upload(mha.replace(b"LOCAL", b"/etc/passwd"), max_pixels=10**12)
    with pytest.raises(UploadRejected, match="LOCAL"):
        check_upload(mha.replace(b"LOCAL", b"LOCALfoo"), max_pixels=10**12)
    tabbed = mha.replace(b"DimSize = 90000 90000", b"DimSize = 8\t8")  # ITK splits on any whitespace
    assert check_upload(tabbed, max_pixels=64) == ("mha", 64)
    with pytest.raises(UploadRejected, match="more than"):
        check_upload(tabbed, max_pixels=63)
    channels = tabbed.replace(b"NDims = 2\n", b"NDims = 2\nElementNumberOfChannels = 200\n")
    with pytest.raises(UploadRejected, match="more than"):
        check_upload(channels, max_pixels=64 * 199)
    with pytest.raises(UploadRejected, match="does not match NDims"):
        check_upload(mha.replace(b"DimSize = 90000 90000", b"DimSize = 90000"), max_pixels=10**12)
    assert safe_name("a/b\\c\n.png") == "abc.png" and safe_name("") == "upload" and len(safe_name("x" * 999)) == 120
