"""Clips in the HTTP service: ``POST /v1/clips`` starts measuring an uploaded clip (AVI, MP4 or
multi-frame DICOM) and answers with a job id at once; ``GET /v1/clips/{id}`` reports progress (frames done
of the total) and, when finished, the clip's summary (:func:`partus.clip.measure_clip`), the plot of AoP
over time and the best frame's overlay (base64 PNG) and the per-frame CSV.

The same safety rules as single images: the body is capped by the service's middleware; the format comes
from the content (RIFF/AVI, ISO-BMFF ``ftyp``, DICOM ``DICM``); the declared size (frames x pixels) is
checked before frames are decoded; the file lives in a private temporary folder removed when the job
ends; at most ``workers`` jobs measure at once and at most ``max_jobs`` are kept (finished ones until
they are fetched, or for ten minutes).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile

from ..errors import InputError
from .uploads import UploadRejected, _dicom_shape, safe_name

CLIP_EXTENSIONS = {"avi": ".avi", "mp4": ".mp4", "dicom": ".dcm"}
KEEP_S = 600.0


def sniff_clip(data: bytes) -> str | None:
    """The clip format of ``data`` from its first bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[128:132] == b"DICM":
        return "dicom"
    return None


def clip_frames(path: Path, kind: str, *, max_pixels: int, max_frames: int) -> int:
    """Frames of a stored clip from its header; UploadRejected when too large or unreadable."""
    if kind == "dicom":  # the header as /v1/measure reads it: (frames, rows, columns x samples)
        frames, rows, cols = _dicom_shape(path.read_bytes())
        size = rows * cols
    else:
        from ..io import video_info

        try:
            info = video_info(path)
        except InputError as exc:
            raise UploadRejected(422, exc.problem) from None
        frames, size = info.frame_count, info.width * info.height
    if frames < 1 or size < 1:
        raise UploadRejected(422, "the clip declares no frames")
    if size > max_pixels or frames > max_frames:
        raise UploadRejected(413, f"{frames} frames of {size:,} pixels; at most {max_frames} frames of "
                                  f"{max_pixels:,} pixels")  # fmt: skip
    return frames


@dataclass
class Job:
    filename: str
    total: int
    done: int = 0
    state: str = "queued"  # queued, running, done, error
    result: dict[str, Any] | None = None
    error: str | None = None
    ended: float = field(default=0.0)


def add_clip_routes(app: FastAPI, *, gate: asyncio.Semaphore, max_pixels: int, max_frames: int, max_jobs: int,
                    tmp_root) -> None:  # fmt: skip
    """Register ``POST /v1/clips`` and ``GET /v1/clips/{id}`` on ``app``."""
    jobs: dict[str, Job] = {}
    tasks: set[asyncio.Task] = set()

    def prune() -> None:
        now = time.monotonic()
        for key in [k for k, j in jobs.items() if j.state in ("done", "error") and now - j.ended > KEEP_S]:
            del jobs[key]

    @app.post("/v1/clips", status_code=202)
    async def start_clip(
        request: Request, file: Annotated[UploadFile, File(description="AVI, MP4 or multi-frame DICOM")]
    ) -> dict[str, Any]:
        """Start measuring a clip; returns ``id`` and the number of frames (poll ``/v1/clips/{id}``)."""
        prune()
        if len(jobs) >= max_jobs:
            raise HTTPException(503, f"{len(jobs)} clips in progress or waiting to be fetched; try again later")
        data = await file.read()
        name = safe_name(file.filename)
        kind = sniff_clip(data) if data else None
        if kind is None:
            raise HTTPException(415, f"{name}: not an accepted clip: AVI, MP4 or multi-frame DICOM")
        tmp = Path(tempfile.mkdtemp(prefix="partus-clip-", dir=tmp_root))
        path = tmp / f"clip{CLIP_EXTENSIONS[kind]}"
        path.write_bytes(data)
        try:
            frames = clip_frames(path, kind, max_pixels=max_pixels, max_frames=max_frames)
        except UploadRejected as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise HTTPException(exc.status, f"{name}: {exc.message}") from None
        key = secrets.token_urlsafe(12)
        jobs[key] = job = Job(name, frames)
        task = asyncio.create_task(_run(request.app.state.predictor, job, path, tmp, gate))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return {"id": key, "frames": frames, "filename": name}

    @app.get("/v1/clips/{key}")
    def clip_status(key: str) -> dict[str, Any]:
        """Progress of a clip job; its result once (the job is then forgotten)."""
        job = jobs.get(key)
        if job is None:
            raise HTTPException(404, "no such clip job (finished results are returned once)")
        out: dict[str, Any] = {"state": job.state, "done": job.done, "total": job.total, "filename": job.filename}
        if job.state == "error":
            out["detail"] = job.error
        if job.state in ("done", "error"):
            out.update(job.result or {})
            del jobs[key]
        return out


async def _run(predictor, job: Job, path: Path, tmp: Path, gate: asyncio.Semaphore) -> None:
    try:
        async with gate:
            job.state = "running"
            job.result = await asyncio.to_thread(_measure, predictor, job, path, tmp)
            job.state = "done"
    except InputError as exc:
        job.state, job.error = "error", f"{job.filename}: {exc.problem}"
    except Exception as exc:  # noqa: BLE001 - a job must end with a state, whatever happened
        job.state, job.error = "error", f"{job.filename}: could not be measured: {type(exc).__name__}"
    finally:
        job.ended = time.monotonic()
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(predictor, job: Job, path: Path, tmp: Path) -> dict[str, Any]:
    from ..clip import measure_clip

    def progress(done: int) -> None:
        job.done = done

    s = measure_clip(predictor, path, tmp / "out", name="clip", progress=progress)
    job.done = s.frames

    def b64(p: Path | None) -> str | None:
        return None if p is None else base64.b64encode(p.read_bytes()).decode("ascii")

    summary = s.as_dict()
    for key in ("csv", "plot", "overlay", "summary", "source"):
        summary.pop(key, None)
    return {"summary": summary, "plot_png": b64(s.plot), "best_png": b64(s.overlay),
            "frames_csv": s.csv.read_text(encoding="utf-8")}  # fmt: skip
