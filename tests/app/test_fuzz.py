"""Fuzzing the real server (``partus serve`` on loopback) with 1,200 malformed uploads: every one gets a
4xx with a message, the server keeps serving, and no temporary file is left behind."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import httpx
import numpy as np
from _helpers import make_dicom

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "partus" / "samples" / "psfhs"
N_PER_KIND = 150


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(w: int, h: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))


def _cases(rng: np.random.Generator, dicom: bytes) -> list[tuple[str, str, bytes, str]]:
    """(kind, filename, content, declared content type) of malformed uploads."""
    png = (SAMPLES / "images" / "04200.png").read_bytes()
    mha = (SAMPLES / "mha" / "03744_image.mha").read_bytes()
    absurd = [
        "../" * 40 + "etc/passwd",
        "x" * 5000,
        "\x00\x01\x02.png",
        "CON",
        "😀" * 50,
        " ",
        "a\r\nb.png",
        "%2e%2e/x",
    ]
    types = ["image/png", "application/dicom", "text/plain", "application/json", "", "image/svg+xml"]
    out = []
    for i in range(N_PER_KIND):
        out.append(("random", f"r{i}.png", rng.bytes(int(rng.integers(0, 4000))), str(rng.choice(types))))
        out.append(("png-cut", f"c{i}.png", png[: int(rng.integers(8, len(png) * 0.9))], "image/png"))
        out.append(("dicom-cut", f"d{i}.dcm", dicom[: int(rng.integers(0, len(dicom) - 64))], "application/dicom"))
        w, h = (int(v) for v in rng.integers(5000, 2**31 - 1, 2))
        body = zlib.compress(b"\0" * 10_000)
        out.append(
            ("png-bomb", f"b{i}.png", _png_header(w, h) + _chunk(b"IDAT", body) + _chunk(b"IEND", b""), "image/png")
        )
        dims = " ".join(str(int(v)) for v in rng.integers(5000, 10**6, 2)) + " 1"  # NDims = 3
        head = mha.split(b"ElementDataFile")[0].replace(b"DimSize = 256 256 3", f"DimSize = {dims}".encode())
        out.append(
            ("mha-bomb", f"m{i}.mha", head + b"ElementDataFile = LOCAL\n" + b"\0" * 100, "application/octet-stream")
        )
        fake = [b"%PDF-1.7\n", b"PK\x03\x04", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"GIF89a", b'{"a": 1}']
        out.append(("wrong-type", f"w{i}.png", fake[i % len(fake)] + rng.bytes(64), "image/png"))
        out.append(("absurd-name", absurd[i % len(absurd)], rng.bytes(int(rng.integers(1, 500))), "image/png"))
        out.append(("png-garbage", f"g{i}.png", png[:33] + rng.bytes(int(rng.integers(10, 3000))), "image/png"))
    return out


def test_server_answers_every_malformed_upload_with_a_4xx_and_keeps_serving(server, tmp_path):
    rng = np.random.default_rng(20261121)
    dicom = make_dicom(tmp_path / "f.dcm", rng.integers(0, 256, (64, 64), dtype=np.uint8), PixelSpacing=[0.2, 0.2])
    cases = _cases(rng, dicom.read_bytes())
    assert len(cases) >= 1000
    codes: dict[str, set[int]] = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for kind, name, content, ctype in cases:
            res = client.post("/v1/measure", files={"files": (name, io.BytesIO(content), ctype)})
            assert 400 <= res.status_code < 500, (kind, name[:40], res.status_code, res.text[:200])
            assert res.json()["detail"], (kind, res.text)
            codes.setdefault(kind, set()).add(res.status_code)
        for raw in (b"", b"not multipart", b"--x\r\n\r\n"):  # broken requests, not just broken files
            res = client.post("/v1/measure", content=raw, headers={"content-type": "multipart/form-data; boundary=x"})
            assert 400 <= res.status_code < 500
        assert client.get("/healthz").status_code == 200
        ok = client.post("/v1/measure", files={"files": ("ok.png", (SAMPLES / "images" / "04200.png").read_bytes())})
        assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "ok"
    assert server.proc.poll() is None, "the server died"
    assert server.leftovers() == [], "temporary files were left behind"
    assert codes["random"] <= {415, 422} and codes["png-bomb"] == {413} and codes["mha-bomb"] == {413}
    assert codes["wrong-type"] == {415}
