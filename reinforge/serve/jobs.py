"""``/v1/fine_tuning/jobs``: create (validated once, its trainer config resolved and stored), list,
retrieve, cancel/pause/resume (the moves of ``serve/states.py``), events, metrics and checkpoints.

Training never runs here: a job is a database row that a worker process (``serve/worker.py``) claims.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reinforge.errors import ConfigError, ReinforgeError
from reinforge.openai_compat import FILE_KINDS, job_config, job_integrations, job_method
from reinforge.serve.context import CallerDep, Limit, Owner, Seq, Service, Svc, page
from reinforge.serve.db import CheckpointRow, EventRow, FileRow, Job, add_event, new_id
from reinforge.serve.errors import APIError, documented, not_found
from reinforge.serve.models import resolve_model
from reinforge.serve.states import ACTIONS, ASK_WORKER, INITIAL, SUCCEEDED, TERMINAL, move, refusal

router = APIRouter(prefix="/v1/fine_tuning/jobs", responses=documented(400, 401, 403, 404, 413, 429))


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # strict: "1" is not seed=1, as the schema says
    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = None
    method: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None  # legacy: supervised hyperparameters at the top level
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None  # [{"type": "wandb", "wandb": {...}}]: openai_compat's trackers


def job_obj(j: Job, result_files: list[str]) -> dict:
    hp = ((j.method or {}).get(j.method.get("type")) or {}).get("hyperparameters") or {}
    return {
        "id": j.id,
        "object": "fine_tuning.job",
        "created_at": int(j.created_at),
        "error": j.error,
        "fine_tuned_model": j.fine_tuned_model,
        "finished_at": int(j.finished_at) if j.finished_at else None,
        "hyperparameters": {
            k: hp.get(k, "auto") for k in ("batch_size", "learning_rate_multiplier", "n_epochs")
        },
        "model": j.model,
        "organization_id": j.owner,
        "result_files": result_files,
        "seed": j.seed,
        "status": j.status,
        "trained_tokens": j.trained_tokens,
        "training_file": j.training_file,
        "validation_file": j.validation_file,
        "estimated_finish": None,
        "integrations": job_integrations(j.config),
        "metadata": j.user_metadata,
        "method": j.method,
        "user_provided_suffix": j.suffix,
    }


def event_obj(e: EventRow) -> dict:
    return {
        "id": f"ftevent-{e.seq}",
        "object": "fine_tuning.job.event",
        "created_at": int(e.created_at),
        "level": e.level,
        "message": e.message,
        "type": e.type,
        "data": e.data,
    }


def checkpoint_obj(c: CheckpointRow) -> dict:
    return {
        "id": c.id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": int(c.created_at),
        "fine_tuned_model_checkpoint": c.model_id,
        "fine_tuning_job_id": c.job_id,
        "metrics": c.metrics,
        "step_number": c.step,
    }


def get_job(s: Session, owner: str, job_id: str, admin: bool = False) -> Job:
    """The job when this key owns it (an admin key reads any); 404 otherwise, as if it did not exist."""
    j = s.get(Job, job_id)
    if j is None or (j.owner != owner and not admin):
        raise not_found("fine-tuning job", job_id)
    return j


def result_files(s: Session, j: Job) -> list[str]:
    if j.status != SUCCEEDED:
        return []
    return list(
        s.scalars(
            select(FileRow.id).where(FileRow.owner == j.owner, FileRow.filename == f"{j.id}-metrics.jsonl")
        ).all()
    )


def job_files(svc: Service, owner: str, req: JobCreate, kind: str) -> dict[str, FileRow]:
    """The job's files, each owned by this key and holding rows its method trains on."""
    files = {}
    with svc.sf() as s:
        for param, fid in (("training_file", req.training_file), ("validation_file", req.validation_file)):
            if fid is None:
                continue
            f = s.get(FileRow, fid)
            if f is None or f.owner != owner:
                raise APIError(400, f"{param} {fid!r}: no such file", param=param, code="invalid_file")
            want = FILE_KINDS[kind]
            if f.kind not in want:
                raise APIError(
                    400,
                    f"{param} {fid!r} ({f.filename}) holds {f.kind} rows; a {kind} job needs "
                    f"{' or '.join(want)} rows",
                    param=param,
                    code="invalid_file",
                )
            files[param] = f
    return files


def check_active_jobs(svc: Service, owner: str) -> None:
    """429 when the key already holds ``max_active_jobs_per_key`` queued, running or paused jobs."""
    limit = svc.settings.max_active_jobs_per_key
    with svc.sf() as s:
        active = s.scalar(
            select(func.count()).select_from(Job).where(Job.owner == owner, Job.status.not_in(TERMINAL))
        )
    if (active or 0) >= limit:
        raise APIError(
            429,
            f"This key has {active} active fine-tuning jobs (queued, running or paused); the limit is {limit} "
            "(serve --max-active-jobs-per-key): wait for one to finish, or cancel one",
            code="rate_limit_exceeded",
            type="requests",
        )


@router.post("")
def create_job(req: JobCreate, svc: Svc, owner: Owner):
    try:
        method = job_method(req.method, req.hyperparameters)
    except ConfigError as e:
        raise APIError(400, str(e), param="method.type") from None
    kind = method["type"]
    model_path = resolve_model(svc, owner, req.model)
    if model_path is None:
        raise APIError(
            400,
            f"model {req.model!r}: not available; GET /v1/models lists the models you can fine-tune",
            param="model",
            code="model_not_available",
        )
    files = job_files(svc, owner, req, kind)
    check_active_jobs(svc, owner)
    job_id, seed = new_id("ftjob"), req.seed if req.seed is not None else 0
    run_dir = svc.data_dir / "jobs" / job_id
    train, val = files["training_file"], files.get("validation_file")
    try:  # the one validation of the job; the worker trains this config
        val_path = val.path if val else None
        cfg = job_config(
            method, model_path, train.path, val_path, str(run_dir), seed, train.rows, req.integrations
        )
    except ReinforgeError as e:
        grader = str(e).startswith("method.reinforcement")
        param, code = ("method.reinforcement.grader", None) if grader else ("method", "invalid_value")
        if str(e).startswith("integrations"):
            param = "integrations"
        raise APIError(400, str(e), param=param, code=code) from None
    j = Job(
        id=job_id,
        owner=owner,
        model=req.model,
        model_path=model_path,
        method=method,
        config=cfg.model_dump(mode="json"),
        training_file=req.training_file,
        validation_file=req.validation_file,
        suffix=req.suffix,
        seed=seed,
        user_metadata=req.metadata,
        status=INITIAL,
        run_dir=str(run_dir),
        created_at=time.time(),
        attempts=0,
        resume=False,
    )
    with svc.sf() as s:
        s.add(j)
        s.flush()  # the job row first: events reference it
        add_event(s, job_id, f"Created fine-tuning job: {job_id}")
        add_event(
            s, job_id, "Validated training file" + (" and validation file" if req.validation_file else "")
        )
        s.commit()
        return job_obj(j, [])


@router.get("")
def list_jobs(svc: Svc, caller: CallerDep, after: str | None = None, limit: Limit = 20):
    """This key's jobs; every key's jobs for an admin key."""
    with svc.sf() as s:
        q = select(Job) if caller.admin else select(Job).where(Job.owner == caller.id)
        if after:
            q = q.where(Job.created_at < get_job(s, caller.id, after, caller.admin).created_at)
        jobs = s.scalars(q.order_by(Job.created_at.desc()).limit(limit + 1)).all()
        return page([job_obj(j, result_files(s, j)) for j in jobs], limit)


@router.get("/{job_id}")
def retrieve_job(job_id: str, svc: Svc, caller: CallerDep):
    with svc.sf() as s:
        j = get_job(s, caller.id, job_id, caller.admin)
        return job_obj(j, result_files(s, j))


# action -> (event when the job moves at once, event when its worker is asked)
ACTION_EVENTS = {
    "cancel": ("Job cancelled", "Cancel requested"),
    "pause": ("Job paused", "Pause requested"),
    "resume": ("Job resumed; queued to continue from its last checkpoint", "(a paused job has no worker)"),
}


def act(job_id: str, action: str, svc: Service, owner: str) -> dict:
    """cancel, pause or resume: move the job (serve/states.py), or ask its worker to."""
    with svc.sf() as s:
        j = get_job(s, owner, job_id)
        why = refusal(job_id, j.status, action)
        if why is not None:
            raise APIError(400, why, code="invalid_state")
        target, (moved, asked) = ACTIONS[action][j.status], ACTION_EVENTS[action]
        if target == ASK_WORKER:
            j.control = action
            add_event(s, j.id, asked)
        else:
            move(j, target)
            j.resume = j.resume or action == "resume"
            add_event(s, j.id, moved)
        s.commit()
        return job_obj(j, [])


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, svc: Svc, owner: Owner):
    return act(job_id, "cancel", svc, owner)


@router.post("/{job_id}/pause")
def pause_job(job_id: str, svc: Svc, owner: Owner):
    return act(job_id, "pause", svc, owner)


@router.post("/{job_id}/resume")
def resume_job(job_id: str, svc: Svc, owner: Owner):
    return act(job_id, "resume", svc, owner)


@router.get("/{job_id}/events")
def list_events(job_id: str, svc: Svc, owner: Owner, after: str | None = None, limit: Limit = 20):
    with svc.sf() as s:
        get_job(s, owner, job_id)
        q = select(EventRow).where(EventRow.job_id == job_id)
        if after:
            seq = after.removeprefix("ftevent-")
            if not (seq.isascii() and seq.isdigit() and len(seq) <= 18):
                raise APIError(400, f"after {after!r}: give an event id (ftevent-N)", param="after")
            q = q.where(EventRow.seq < int(seq))
        rows = s.scalars(q.order_by(EventRow.seq.desc()).limit(limit + 1)).all()
        return page([event_obj(e) for e in rows], limit)


@router.get("/{job_id}/metrics")
def list_metrics(job_id: str, svc: Svc, owner: Owner, since: Seq = 0):
    """reinforge extension: every metrics record after event sequence ``since``, oldest first."""
    with svc.sf() as s:
        j = get_job(s, owner, job_id)
        rows = s.scalars(
            select(EventRow)
            .where(EventRow.job_id == job_id, EventRow.type == "metrics", EventRow.seq > since)
            .order_by(EventRow.seq)
        ).all()
        return {
            "object": "list",
            "status": j.status,
            "data": [{"seq": e.seq, **(e.data or {})} for e in rows],
        }


@router.get("/{job_id}/checkpoints")
def list_checkpoints(job_id: str, svc: Svc, owner: Owner, after: str | None = None, limit: Limit = 10):
    with svc.sf() as s:
        get_job(s, owner, job_id)
        q = select(CheckpointRow).where(CheckpointRow.job_id == job_id)
        if after:
            a = s.get(CheckpointRow, after)
            if a is not None and a.job_id == job_id:
                q = q.where(CheckpointRow.step < a.step)
        rows = [c for c in s.scalars(q.order_by(CheckpointRow.step.desc())).all() if Path(c.path).exists()]
        return page([checkpoint_obj(c) for c in rows[: limit + 1]], limit)
