"""The partus HTTP service (FastAPI): one page for clinicians, ``POST /v1/measure`` (images) and
``/v1/clips`` (clips, :mod:`.clips`) for programs.

Safety: uploads are capped in bytes (413) while they stream in and in declared pixels before decoding
(decompression bombs, 413); the format is taken from the content, never from the name or declared type
(415 otherwise, 422 for undecodable files); client file names are only echoed, never used as paths;
each request works in its own temporary directory, removed before the response is sent; nothing is
kept. An optional bearer token protects ``/v1/*`` for use beyond the loopback interface. Inference runs
in worker threads (at most ``workers`` at once, which bounds memory under load); the model is loaded once.
"""

from __future__ import annotations

import asyncio
import base64
import math
import secrets
import shutil
import tempfile
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.formparsers import MultiPartParser

from .. import __version__
from ..errors import InputError
from ..io import as_gray_uint8, encode_png, read_any
from ..predict import Predictor, load_model
from ..viz import draw_overlay
from .clips import add_clip_routes
from .uploads import EXTENSIONS, UploadRejected, check_upload, safe_name

__all__ = ["create_app"]

MiB = 2**20


class _Guard:
    """ASGI middleware in front of the app: with a token, 401 for ``/v1`` requests without it (before a
    byte of the body is read); 413 when a body exceeds ``limit`` bytes, by its header or while it streams
    in (chunked uploads). The body is read before the app sees it, so the app never parses a partial one."""

    def __init__(self, app, limit: int, token: str | None):
        self.app, self.limit, self.token = app, limit, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token is not None and scope["path"].startswith("/v1"):
            given = headers.get(b"authorization", b"")
            if not (given.startswith(b"Bearer ") and secrets.compare_digest(given[7:], self.token.encode())):
                response = JSONResponse(
                    {"detail": "missing or wrong bearer token"}, 401, headers={"WWW-Authenticate": "Bearer"}
                )
                return await response(scope, receive, send)
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _reject(scope, send, 413, f"upload larger than {self.limit / MiB:g} MiB")
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            more = message.get("more_body", False)
            if seen > self.limit:
                return await _reject(scope, send, 413, f"upload larger than {self.limit / MiB:g} MiB")
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _reject(scope, send, status: int, message: str) -> None:
    await JSONResponse({"detail": message}, status_code=status)(scope, None, send)


def create_app(
    predictor: Predictor | None = None,
    *,
    token: str | None = None,
    max_upload_mb: float = 20.0,
    max_pixels: int = 16_000_000,
    max_files: int = 16,
    workers: int = 2,
    tmp_root: str | Path | None = None,
    max_clip_frames: int = 3000,
    max_jobs: int = 8,
) -> FastAPI:
    """Build the app.

    Parameters
    ----------
    predictor : Predictor, optional
        Default: the bundled model, loaded at start-up.
    token : str, optional
        Require ``Authorization: Bearer <token>`` on ``/v1/*``.
    max_upload_mb : float
        Largest request body.
    max_pixels : int
        Largest declared image size (all frames), checked before decoding.
    max_files : int
        Most files per request.
    workers : int
        Most images measured at once.
    tmp_root : path, optional
        Where per-request temporary directories are made (default: the system's).
    max_clip_frames, max_jobs : int
        Clips (``/v1/clips``): most frames of one clip (each at most ``max_pixels``), and most clip jobs
        kept at once (running, waiting, or finished and not yet fetched).
    """
    limit = int(max_upload_mb * MiB)
    # Keep parsed uploads in memory (their size is capped above) instead of spooling them to the
    # system temporary directory: nothing of a request may touch the disk outside its own folder.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limit)
    gate = asyncio.Semaphore(workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.predictor = predictor or load_model(spinning=False)  # concurrent requests: no spinning
        yield

    app = FastAPI(
        title="partus",
        version=__version__,
        summary="Angle of Progression and head-symphysis distance on intrapartum ultrasound (research tool).",
        lifespan=lifespan,
    )
    app.add_middleware(_Guard, limit=limit, token=token)
    add_clip_routes(app, gate=gate, max_pixels=max_pixels, max_frames=max_clip_frames, max_jobs=max_jobs,
                    tmp_root=tmp_root)  # fmt: skip

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    def healthz(request: Request) -> dict[str, Any]:
        """Liveness, the model id and whether ``/v1`` needs a token."""
        model = request.app.state.predictor.id
        return {"status": "ok", "version": __version__, "model": model, "auth": token is not None}

    @app.post("/v1/measure")
    async def measure(
        request: Request,
        files: Annotated[list[UploadFile], File(description="PNG, JPEG, BMP, TIFF, DICOM or .mha (one frame each)")],
        overlay: bool = True,
    ) -> dict[str, Any]:
        """Measure each uploaded image: landmarks, AoP, HSD (mm when the file states its pixel spacing),
        verdict and reason, and an overlay PNG (base64)."""
        if len(files) > max_files:
            raise HTTPException(413, f"{len(files)} files; at most {max_files} per request")
        uploads, total = [], 0
        for f in files:
            data = await f.read()
            name = safe_name(f.filename)
            try:
                kind, pixels = check_upload(data, max_pixels=max_pixels)
            except UploadRejected as exc:
                raise HTTPException(exc.status, f"{name}: {exc.message}") from None
            total += pixels
            if total > 2 * max_pixels:  # bounds the memory of one request, whatever the number of files
                raise HTTPException(413, f"the files declare {total:,} pixels in all; at most {2 * max_pixels:,}")
            uploads.append((name, data, kind))
        async with gate:
            results = await asyncio.to_thread(_measure_all, request.app.state.predictor, uploads, overlay, tmp_root)
        return {"model": request.app.state.predictor.id, "version": __version__, "results": results}

    return app


def _measure_all(predictor: Predictor, uploads: list, overlay: bool, tmp_root) -> list[dict[str, Any]]:
    """Decode (in a private temporary folder, always removed) and measure; 422 if a file does not decode."""
    tmp = Path(tempfile.mkdtemp(prefix="partus-req-", dir=tmp_root))
    try:
        images = []
        for i, (name, data, kind) in enumerate(uploads):
            path = tmp / f"upload{i}{EXTENSIONS[kind]}"
            path.write_bytes(data)
            try:
                image = read_any(path)
            except (InputError, OSError, ValueError, MemoryError) as exc:
                problem = exc.problem if isinstance(exc, InputError) else type(exc).__name__
                raise HTTPException(422, f"{name}: could not decode the {kind.upper()} file: {problem}") from None
            if image.frames > 1:
                raise HTTPException(422, f"{name}: {image.frames} frames; upload one frame, or the clip to /v1/clips")
            try:
                gray = as_gray_uint8(image.pixels, name)
            except InputError as exc:
                raise HTTPException(422, f"{name}: {exc.problem}") from None
            images.append((gray, image.pixel_spacing))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    preds = predictor.predict([g for g, _ in images], pixel_spacing=[sp for _, sp in images])
    out = []
    for (name, _, kind), pred in zip(uploads, preds, strict=True):
        item = {"filename": name, "format": kind, **pred.measurement.as_dict()}
        item["size"] = list(pred.image.shape)
        if overlay:
            img = draw_overlay(pred.image, pred.measurement, label_map=pred.label_map, title=name)
            item["overlay_png"] = base64.b64encode(encode_png(img, name)).decode("ascii")
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in item.items()})
    return out
