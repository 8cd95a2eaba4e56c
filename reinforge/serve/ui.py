"""The web UI: ``/`` (a single page: files, jobs, chat, feedback queues), its ``/static`` files, ``/health``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def index():
    return FileResponse(STATIC / "index.html")


@router.get("/health")
def health():
    return {"ok": True}


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
