"""``/v1/models``: the built-in tiny models, ``--model`` directories, and each key's fine-tuned models and
checkpoints; :func:`resolve_model` says what a model id loads (jobs, chat and feedback use it)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from sqlalchemy import select

from reinforge.errors import ConfigError
from reinforge.serve.context import Owner, Service, Svc
from reinforge.serve.db import CheckpointRow, Job
from reinforge.serve.errors import documented, not_found
from reinforge.train.warmup import parse_tiny_id

router = APIRouter(prefix="/v1/models", responses=documented(401, 403, 404))
BUILTIN_MODELS = ["tiny:addition:1m", "tiny:addition:4m"]


def resolve_model(svc: Service, owner: str, model_id: str) -> str | None:
    """What ``load_model`` takes for a model id this key may use; None when unknown to it."""
    try:
        if parse_tiny_id(model_id) is not None:
            return model_id
    except ConfigError:  # a malformed tiny id is an unknown model here
        return None
    if model_id in svc.local_models:
        return svc.local_models[model_id]
    if model_id.startswith("ft:"):
        with svc.sf() as s:
            job = s.scalar(select(Job).where(Job.owner == owner, Job.fine_tuned_model == model_id))
            if job is not None:
                return str(Path(job.run_dir) / "final")
            ck = s.scalar(
                select(CheckpointRow).where(CheckpointRow.owner == owner, CheckpointRow.model_id == model_id)
            )
            if ck is not None and Path(ck.path).exists():
                return ck.path
    return None


def model_obj(mid: str, created: float, owned_by: str) -> dict:
    return {"id": mid, "object": "model", "created": int(created), "owned_by": owned_by}


@router.get("")
def list_models(svc: Svc, owner: Owner):
    out = [model_obj(m, 0, "reinforge") for m in BUILTIN_MODELS]
    out += [model_obj(m, Path(p).stat().st_mtime, "local") for m, p in svc.local_models.items()]
    with svc.sf() as s:
        for j in s.scalars(select(Job).where(Job.owner == owner, Job.fine_tuned_model.is_not(None))).all():
            out.append(model_obj(str(j.fine_tuned_model), j.finished_at or j.created_at, owner))
        for c in s.scalars(select(CheckpointRow).where(CheckpointRow.owner == owner)).all():
            if Path(c.path).exists():
                out.append(model_obj(c.model_id, c.created_at, owner))
    return {"object": "list", "data": out}


@router.get("/{model_id:path}")
def retrieve_model(model_id: str, svc: Svc, owner: Owner):
    if resolve_model(svc, owner, model_id) is None:
        raise not_found("model", model_id)
    return model_obj(model_id, 0, "reinforge" if model_id.startswith("tiny:") else owner)
