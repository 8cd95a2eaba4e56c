"""What every router shares: the settings, the database, the model pool, the API-key check, list pages.

Routes take these as FastAPI dependencies: ``owner: Owner`` (the API key's id; 401 without a valid key)
and ``svc: Svc`` (the :class:`Service` that ``create_app`` put on ``app.state``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from reinforge.serve.db import default_db_url, lookup_key, make_engine, session_factory
from reinforge.serve.errors import APIError
from reinforge.serve.inference import ModelPool
from reinforge.serve.limits import RateLimiter
from reinforge.serve.sessions import COOKIE, csrf_problem, session_key


@dataclass
class ServeSettings:
    data_dir: str | Path = "reinforge-data"
    db_url: str | None = None
    models: list[str] = field(default_factory=list)  # extra local model directories
    max_upload_bytes: int = 512 * 1024 * 1024
    max_json_bytes: int = 4 * 1024 * 1024  # a JSON request's body (uploads have max_upload_bytes): else 413
    max_active_jobs_per_key: int = 4  # queued, running or paused jobs a key may hold: else 429
    grader_runs_per_minute: int = 600  # /v1/fine_tuning/alpha/graders/run, per key: else 429 + Retry-After
    chat_per_minute: int = 120  # /v1/chat/completions, per key: else 429 + Retry-After
    request_timeout_s: float = 15.0  # a request's head must arrive within it, and no body gap be longer
    keep_alive_s: int = 5  # an idle keep-alive connection is closed after it
    max_connections: int = 1000  # open connections; beyond it uvicorn answers 503


class Service:
    """One server's state: its data directory, database sessions and loaded models."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        (self.data_dir / "files").mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.db_url or default_db_url(self.data_dir))
        self.sf = session_factory(self.engine)
        self.pool = ModelPool()
        self.local_models = {Path(m).resolve().name: str(Path(m).resolve()) for m in settings.models}
        self.rates = RateLimiter()


def service(request: Request) -> Service:
    return request.app.state.service


@dataclass(frozen=True)
class Caller:
    """The API key a request came with: its id (the owner of what it creates) and its scope."""

    id: str
    admin: bool = False  # sees every key's jobs; may manage keys


# declares the key in the OpenAPI schema (clients and fuzzers see it); the check is caller_of's own
BEARER = HTTPBearer(auto_error=False, description="An API key: `reinforge keys create --name NAME`")


async def caller_of(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Caller:
    """The key in ``Authorization: Bearer <key>``, else the web UI's session cookie; 401 when it is
    missing, unknown, revoked or expired. Looked up on every request (no cache), so a revocation holds
    at once."""
    key = bearer.credentials.strip() if bearer is not None else ""
    if not key and COOKIE in request.cookies:
        return await run_in_threadpool(session_caller, request)
    if not key:
        raise APIError(
            401,
            "Missing API key: send 'Authorization: Bearer <key>' (create one with "
            "`reinforge keys create --name NAME`)",
            code="invalid_api_key",
        )
    row = await run_in_threadpool(lookup_key, service(request).engine, key)
    if row is None:
        raise APIError(
            401, "Incorrect API key provided (unknown, revoked or expired).", code="invalid_api_key"
        )
    return Caller(row.id, bool(row.admin))


def session_caller(request: Request) -> Caller:
    """The key a web-UI session cookie stands for (``serve/sessions.py``): 401 once the session is over
    or its key is revoked or expired; 403 for a state change without the session's CSRF token or from
    another origin."""
    found = session_key(service(request).engine, request.cookies[COOKIE])
    if found is None:
        raise APIError(
            401,
            "Your web session has ended (logged out, expired, or its key revoked): log in again.",
            code="invalid_api_key",
        )
    key, csrf = found
    problem = csrf_problem(request.method, request.headers, csrf, own_origin(request))
    if problem:
        raise APIError(403, f"{request.method} with a session cookie refused: {problem}.", code="csrf_failed")
    return Caller(key.id, bool(key.admin))


def own_origin(request: Request) -> str:
    """This server's origin as the browser sees it (``scheme://host[:port]``)."""
    return f"{request.url.scheme}://{request.url.netloc}"


async def owner_of(caller: Annotated[Caller, Depends(caller_of)]) -> str:
    """The id of the request's API key: what it creates belongs to it."""
    return caller.id


Owner = Annotated[str, Depends(owner_of)]
# query and path numbers the database can hold: anything else is a 400 naming the parameter, not a 500
Limit = Annotated[int, Query(ge=1, le=10_000, description="Items per page")]
Seq = Annotated[int, Query(ge=0, le=2**62)]
RowId = Annotated[int, PathParam(ge=0, le=2**62)]
CallerDep = Annotated[Caller, Depends(caller_of)]
Svc = Annotated[Service, Depends(service)]


def rate_limited(group: str, setting: str):
    """A dependency spending one of the caller's ``settings.<setting>`` calls a minute on ``group``;
    429 with ``Retry-After`` (whole seconds) when none is left."""

    async def check(caller: CallerDep, svc: Svc) -> None:
        per_minute = getattr(svc.settings, setting)
        wait = svc.rates.take(caller.id, group, per_minute)
        if wait > 0:
            raise APIError(
                429,
                f"Rate limit: {per_minute} {group} requests a minute per key (serve --{setting.replace('_', '-')}); "
                f"retry in {math.ceil(wait)} s",
                code="rate_limit_exceeded",
                type="requests",
                headers={"Retry-After": str(math.ceil(wait))},
            )

    return Depends(check)


def page(items: list[dict], limit: int) -> dict:
    """OpenAI's list envelope; ``items`` holds up to limit + 1 so has_more is known."""
    return {
        "object": "list",
        "data": items[:limit],
        "has_more": len(items) > limit,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[:limit][-1]["id"] if items else None,
    }
