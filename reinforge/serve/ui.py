"""The web UI: ``/`` (a single page: files, jobs, chat, feedback queues), its ``/static`` files, ``/health``,
and its login: ``/ui/login`` trades an API key for a session cookie, ``/ui/session`` tells the page who
is signed in (and its CSRF token), ``/ui/logout`` ends the session (``serve/sessions.py``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from reinforge.serve.context import CallerDep, Svc, own_origin
from reinforge.serve.db import lookup_key
from reinforge.serve.errors import APIError
from reinforge.serve.sessions import COOKIE, SESSION_TTL_S, end_session, session_key, start_session

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)


class Login(BaseModel):
    key: str


@router.get("/")
def index():
    return FileResponse(STATIC / "index.html")


@router.get("/health")
def health():
    return {"ok": True}


@router.post("/ui/login")
async def login(body: Login, request: Request, response: Response, svc: Svc):
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != own_origin(request):
        raise APIError(403, f"Log in from this server's own page, not from {origin!r}.", code="csrf_failed")
    key = await run_in_threadpool(lookup_key, svc.engine, body.key.strip())
    if key is None:
        raise APIError(
            401, "Incorrect API key (unknown, revoked or expired).", param="key", code="invalid_api_key"
        )
    token, csrf = await run_in_threadpool(start_session, svc.engine, key.id)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL_S),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return {"key_id": key.id, "name": key.name, "csrf_token": csrf}


@router.get("/ui/session")
async def session_info(request: Request, svc: Svc):
    found = await run_in_threadpool(session_key, svc.engine, request.cookies.get(COOKIE, ""))
    if found is None:
        raise APIError(401, "Not logged in: send your API key to /ui/login.", code="invalid_api_key")
    key, csrf = found
    return {"key_id": key.id, "name": key.name, "csrf_token": csrf}


@router.post("/ui/logout")
async def logout(_caller: CallerDep, request: Request, response: Response, svc: Svc):
    """Ends the session the cookie names (a state change: the CSRF token is checked as for any other)."""
    await run_in_threadpool(end_session, svc.engine, request.cookies.get(COOKIE, ""))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return {"ok": True}


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
