"""``partus serve``: the web page and the HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import ModelOpt, _predictor, err


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default: this computer only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    token: Annotated[
        str | None, typer.Option(envvar="PARTUS_TOKEN", help="Require 'Authorization: Bearer TOKEN' on /v1.")
    ] = None,
    models: ModelOpt = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body (MiB).")] = 20.0,
    max_pixels: Annotated[int, typer.Option(help="Largest declared image size (pixels, all frames).")] = 16_000_000,
    tmp_dir: Annotated[Path | None, typer.Option(help="Where per-request temporary folders go (default: system).")] = (
        None
    ),
) -> None:
    """Serve the web page and the HTTP API (POST /v1/measure, GET /healthz, docs at /docs)."""
    import ipaddress

    import uvicorn

    from ..app import create_app

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and token is None:
        err.print(f"[yellow]warning:[/yellow] listening on {host} without --token: anyone who can reach it can use it")
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    predictor = _predictor(models, False)
    api = create_app(predictor, token=token, max_upload_mb=max_upload_mb, max_pixels=max_pixels, tmp_root=tmp_dir)
    err.print(f"partus {predictor.id} on http://{host}:{port}/  (a research tool, not a medical device)")
    uvicorn.run(api, host=host, port=port, log_level="warning")
