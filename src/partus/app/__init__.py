"""The partus web app and HTTP service (FastAPI + uvicorn): ``partus serve``."""

from .server import create_app

__all__ = ["create_app"]
