"""What every router shares: the settings, the database, the model pool, the API-key check, list pages.

Routes take these as FastAPI dependencies: ``owner: Owner`` (the API key's id; 401 without a valid key)
and ``svc: Svc`` (the :class:`Service` that ``create_app`` put on ``app.state``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from reinforge.serve.db import default_db_url, hash_key, lookup_key, make_engine, session_factory
from reinforge.serve.errors import APIError
from reinforge.serve.inference import ModelPool


@dataclass
class ServeSettings:
    data_dir: str | Path = "reinforge-data"
    db_url: str | None = None
    models: list[str] = field(default_factory=list)  # extra local model directories
    max_upload_bytes: int = 512 * 1024 * 1024


class Service:
    """One server's state: its data directory, database sessions, loaded models and known keys."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        (self.data_dir / "files").mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.db_url or default_db_url(self.data_dir))
        self.sf = session_factory(self.engine)
        self.pool = ModelPool()
        self.local_models = {Path(m).resolve().name: str(Path(m).resolve()) for m in settings.models}
        self.key_cache: dict[str, str] = {}  # key hash -> owner


def service(request: Request) -> Service:
    return request.app.state.service


async def owner_of(request: Request) -> str:
    """The id of the API key in ``Authorization: Bearer <key>``; 401 when it is missing or unknown."""
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not key:
        raise APIError(
            401,
            "Missing API key: send 'Authorization: Bearer <key>' (create one with "
            "`reinforge keys create --name NAME`)",
            code="invalid_api_key",
        )
    svc, h = service(request), hash_key(key)
    owner = svc.key_cache.get(h) or await run_in_threadpool(lookup_key, svc.engine, key)
    if owner is None:
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    svc.key_cache[h] = owner
    return owner


Owner = Annotated[str, Depends(owner_of)]
Svc = Annotated[Service, Depends(service)]


def page(items: list[dict], limit: int) -> dict:
    """OpenAI's list envelope; ``items`` holds up to limit + 1 so has_more is known."""
    return {
        "object": "list",
        "data": items[:limit],
        "has_more": len(items) > limit,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[:limit][-1]["id"] if items else None,
    }
