"""``/v1/keys``: key management for admin keys (``reinforge keys create --admin``), as the ``keys`` CLI
does on the server's own machine: list, create (the key is shown once), revoke. Other keys get 403.

A revoked key is refused at its next request: the key check reads the database every time.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from reinforge.serve.context import Caller, CallerDep, Svc
from reinforge.serve.db import ApiKey, create_key, list_keys, revoke_key
from reinforge.serve.errors import APIError, documented, not_found

router = APIRouter(prefix="/v1/keys", responses=documented(400, 401, 403, 404, 413))


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=200)
    expires_in: int | None = Field(None, ge=1, le=10 * 365 * 86400, description="Lifetime in seconds")
    admin: bool = False


def key_obj(k: ApiKey) -> dict:
    return {
        "id": k.id,
        "object": "api_key",
        "name": k.name,
        "admin": bool(k.admin),
        "created_at": int(k.created_at),
        "expires_at": int(k.expires_at) if k.expires_at else None,
        "revoked_at": int(k.revoked_at) if k.revoked_at else None,
    }


def require_admin(caller: Caller) -> None:
    if not caller.admin:
        raise APIError(
            403,
            "Key management needs an admin key (`reinforge keys create --admin` on the server)",
            code="admin_required",
        )


@router.get("")
async def list_api_keys(caller: CallerDep, svc: Svc):
    require_admin(caller)
    rows = await run_in_threadpool(list_keys, svc.engine)
    return {"object": "list", "data": [key_obj(k) for k in rows], "has_more": False}


@router.post("")
async def create_api_key(req: KeyCreate, caller: CallerDep, svc: Svc):
    require_admin(caller)
    key_id, key = await run_in_threadpool(create_key, svc.engine, req.name, req.expires_in, req.admin)
    return {"id": key_id, "object": "api_key", "name": req.name, "admin": req.admin, "key": key}


@router.delete("/{key_id}")
async def revoke_api_key(key_id: str, caller: CallerDep, svc: Svc):
    require_admin(caller)
    row = await run_in_threadpool(revoke_key, svc.engine, key_id)
    if row is None:
        raise not_found("API key", key_id)
    return key_obj(row)
