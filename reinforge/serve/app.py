"""The FastAPI app: OpenAI-compatible files, fine-tuning jobs, graders, models and chat completions.

Every ``/v1`` route needs ``Authorization: Bearer <key>``; a key sees only what it created (others' ids
answer 404). Errors use OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``. Training never
runs here: a job is a database row that a worker process (``reinforge.serve.worker``) picks up.

>>> from fastapi.testclient import TestClient
>>> import tempfile
>>> client = TestClient(create_app(ServeSettings(data_dir=tempfile.mkdtemp())))
>>> r = client.get("/v1/models")
>>> r.status_code, r.json()["error"]["code"]
(401, 'invalid_api_key')
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from reinforge.errors import ReinforgeError
from reinforge.serve.db import (
    CheckpointRow,
    EventRow,
    FileRow,
    Job,
    add_event,
    default_db_url,
    hash_key,
    lookup_key,
    make_engine,
    new_id,
    session_factory,
)

STATIC = Path(__file__).parent / "static"
BUILTIN_MODELS = ["tiny:addition:1m", "tiny:addition:4m"]
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class ServeSettings:
    data_dir: str | Path = "reinforge-data"
    db_url: str | None = None
    models: list[str] = field(default_factory=list)  # extra local model directories
    max_upload_bytes: int = 512 * 1024 * 1024


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ):
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def not_found(what: str, id_: str) -> APIError:
    return APIError(404, f"No such {what}: '{id_}'", param="id", code="not_found")


def page(items: list[dict], limit: int) -> dict:
    """OpenAI's list envelope; ``items`` holds up to limit + 1 so has_more is known."""
    return {
        "object": "list",
        "data": items[:limit],
        "has_more": len(items) > limit,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[:limit][-1]["id"] if items else None,
    }


# ---------------------------------------------------------------------------------------------- objects


def file_obj(f: FileRow) -> dict:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": int(f.created_at),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


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
        "integrations": [],
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


# ---------------------------------------------------------------------------------------------- requests


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = None
    method: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None  # legacy: supervised hyperparameters at the top level
    metadata: dict[str, str] | None = None


class GraderRun(BaseModel):
    grader: dict[str, Any]
    model_sample: str
    item: dict[str, Any] | None = None
    reference_answer: Any = None


class GraderValidate(BaseModel):
    grader: dict[str, Any]


class ChatCompletion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[dict[str, Any]]
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int = 1
    stream: bool = False
    seed: int | None = None


# ---------------------------------------------------------------------------------------------- app


def create_app(settings: ServeSettings) -> FastAPI:
    from reinforge.serve.feedback import feedback_router
    from reinforge.serve.inference import ModelPool, completion_response

    data_dir = Path(settings.data_dir).resolve()
    (data_dir / "files").mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url or default_db_url(data_dir))
    sf = session_factory(engine)
    pool = ModelPool()
    local_models = {Path(m).resolve().name: str(Path(m).resolve()) for m in settings.models}
    key_cache: dict[str, str] = {}

    app = FastAPI(title="reinforge", version="0.1.0", docs_url="/docs")
    app.state.sf, app.state.pool, app.state.settings = sf, pool, settings

    @app.exception_handler(APIError)
    async def _api_error(_req: Request, e: APIError):
        return JSONResponse(error_body(e.message, e.type, e.param, e.code), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, e: RequestValidationError):
        err = e.errors()[0]
        loc = [str(x) for x in err.get("loc", []) if x not in ("body", "query", "path")]
        param = ".".join(loc) or None
        return JSONResponse(
            error_body(f"{param or 'request'}: {err.get('msg')}", param=param, code="invalid_value"),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, e: StarletteHTTPException):
        return JSONResponse(
            error_body(str(e.detail), code="not_found" if e.status_code == 404 else None),
            status_code=e.status_code,
        )

    async def owner_of(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            raise APIError(
                401,
                "Missing API key: send 'Authorization: Bearer <key>' (create one with "
                "`reinforge keys create --name NAME`)",
                code="invalid_api_key",
            )
        h = hash_key(key)
        owner = key_cache.get(h) or await run_in_threadpool(lookup_key, engine, key)
        if owner is None:
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        key_cache[h] = owner
        return owner

    Owner = Depends(owner_of)

    # ------------------------------------------------------------------ files
    @app.post("/v1/files")
    def upload_file(file: UploadFile = File(...), purpose: str = Form(...), owner: str = Owner):
        from reinforge.serve.uploads import validate_upload

        if purpose not in ("fine-tune", "user_data", "evals", "batch"):
            raise APIError(400, f"purpose {purpose!r}: use 'fine-tune' for training files", param="purpose")
        fid = new_id("file")
        path = data_dir / "files" / f"{fid}.jsonl"
        size = 0
        with path.open("wb") as out:
            while chunk := file.file.read(1 << 20):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    out.close()
                    path.unlink(missing_ok=True)
                    raise APIError(
                        413,
                        f"{file.filename}: larger than the upload limit of {settings.max_upload_bytes} bytes",
                        param="file",
                        code="file_too_large",
                    )
                out.write(chunk)
        name = file.filename or "upload.jsonl"
        kind, rows = "raw", 0
        if purpose == "fine-tune":
            try:
                kind, rows = validate_upload(path, name)
            except ReinforgeError as e:
                path.unlink(missing_ok=True)
                raise APIError(400, str(e), param="file", code="invalid_file") from None
        row = FileRow(
            id=fid,
            owner=owner,
            filename=name,
            purpose=purpose,
            bytes=size,
            path=str(path),
            kind=kind,
            rows=rows,
            created_at=time.time(),
        )
        with sf() as s:
            s.add(row)
            s.commit()
        return file_obj(row)

    def get_file(s, owner: str, fid: str) -> FileRow:
        f = s.get(FileRow, fid)
        if f is None or f.owner != owner:
            raise not_found("file", fid)
        return f

    @app.get("/v1/files")
    def list_files(
        purpose: str | None = None,
        limit: int = 10000,
        after: str | None = None,
        order: str = "desc",
        owner: str = Owner,
    ):
        with sf() as s:
            q = select(FileRow).where(FileRow.owner == owner)
            if purpose:
                q = q.where(FileRow.purpose == purpose)
            col = FileRow.created_at
            if after:
                a = get_file(s, owner, after)
                q = q.where(col < a.created_at if order == "desc" else col > a.created_at)
            rows = s.scalars(q.order_by(col.desc() if order == "desc" else col).limit(limit + 1)).all()
            return page([file_obj(f) for f in rows], limit)

    @app.get("/v1/files/{fid}")
    def retrieve_file(fid: str, owner: str = Owner):
        with sf() as s:
            return file_obj(get_file(s, owner, fid))

    @app.get("/v1/files/{fid}/content")
    def file_content(fid: str, owner: str = Owner):
        with sf() as s:
            f = get_file(s, owner, fid)
        return FileResponse(f.path, media_type="application/octet-stream", filename=f.filename)

    @app.delete("/v1/files/{fid}")
    def delete_file(fid: str, owner: str = Owner):
        with sf() as s:
            f = get_file(s, owner, fid)
            if f.kind != "results":
                Path(f.path).unlink(missing_ok=True)
            s.delete(f)
            s.commit()
        return {"id": fid, "object": "file", "deleted": True}

    # ------------------------------------------------------------------ models
    def resolve_model(owner: str, model_id: str) -> str | None:
        """What ``load_model`` takes for a model id this key may use; None when unknown to it."""
        from reinforge.errors import ConfigError
        from reinforge.train.warmup import parse_tiny_id

        try:
            if parse_tiny_id(model_id) is not None:
                return model_id
        except ConfigError:  # a malformed tiny id is an unknown model here
            return None
        if model_id in local_models:
            return local_models[model_id]
        if model_id.startswith("ft:"):
            with sf() as s:
                job = s.scalar(select(Job).where(Job.owner == owner, Job.fine_tuned_model == model_id))
                if job is not None:
                    return str(Path(job.run_dir) / "final")
                ck = s.scalar(
                    select(CheckpointRow).where(
                        CheckpointRow.owner == owner, CheckpointRow.model_id == model_id
                    )
                )
                if ck is not None and Path(ck.path).exists():
                    return ck.path
        return None

    def model_obj(mid: str, created: float, owned_by: str) -> dict:
        return {"id": mid, "object": "model", "created": int(created), "owned_by": owned_by}

    @app.get("/v1/models")
    def list_models(owner: str = Owner):
        out = [model_obj(m, 0, "reinforge") for m in BUILTIN_MODELS]
        out += [model_obj(m, Path(p).stat().st_mtime, "local") for m, p in local_models.items()]
        with sf() as s:
            for j in s.scalars(
                select(Job).where(Job.owner == owner, Job.fine_tuned_model.is_not(None))
            ).all():
                out.append(model_obj(j.fine_tuned_model, j.finished_at or j.created_at, owner))
            for c in s.scalars(select(CheckpointRow).where(CheckpointRow.owner == owner)).all():
                if Path(c.path).exists():
                    out.append(model_obj(c.model_id, c.created_at, owner))
        return {"object": "list", "data": out}

    @app.get("/v1/models/{model_id:path}")
    def retrieve_model(model_id: str, owner: str = Owner):
        if resolve_model(owner, model_id) is None:
            raise not_found("model", model_id)
        return model_obj(model_id, 0, "reinforge" if model_id.startswith("tiny:") else owner)

    # ------------------------------------------------------------------ jobs
    def get_job(s, owner: str, job_id: str) -> Job:
        j = s.get(Job, job_id)
        if j is None or j.owner != owner:
            raise not_found("fine-tuning job", job_id)
        return j

    def result_files(s, j: Job) -> list[str]:
        if j.status != "succeeded":
            return []
        return list(
            s.scalars(
                select(FileRow.id).where(
                    FileRow.owner == j.owner, FileRow.filename == f"{j.id}-metrics.jsonl"
                )
            ).all()
        )

    @app.post("/v1/fine_tuning/jobs")
    def create_job(req: JobCreate, owner: str = Owner):
        from reinforge.serve.graders import validate_grader
        from reinforge.serve.trainers import build_config

        method = dict(
            req.method or {"type": "supervised", "supervised": {"hyperparameters": req.hyperparameters}}
        )
        kind = method.get("type")
        if kind not in ("reinforcement", "supervised", "dpo"):
            raise APIError(
                400, f"method.type {kind!r}: must be reinforcement, supervised or dpo", param="method.type"
            )
        model_path = resolve_model(owner, req.model)
        if model_path is None:
            raise APIError(
                400,
                f"model {req.model!r}: not available; GET /v1/models lists the models you can fine-tune",
                param="model",
                code="model_not_available",
            )
        with sf() as s:
            files = {}
            for param, fid in (
                ("training_file", req.training_file),
                ("validation_file", req.validation_file),
            ):
                if fid is None:
                    continue
                f = s.get(FileRow, fid)
                if f is None or f.owner != owner:
                    raise APIError(400, f"{param} {fid!r}: no such file", param=param, code="invalid_file")
                want = {"reinforcement": ("chat",), "supervised": ("chat",), "dpo": ("dpo", "preference")}[
                    kind
                ]
                if f.kind not in want:
                    raise APIError(
                        400,
                        f"{param} {fid!r} ({f.filename}) holds {f.kind} rows; a {kind} job needs "
                        f"{' or '.join(want)} rows",
                        param=param,
                        code="invalid_file",
                    )
                files[param] = f
        if kind == "reinforcement":
            grader = (method.get("reinforcement") or {}).get("grader")
            if not grader:
                raise APIError(
                    400, "method.reinforcement.grader: required", param="method.reinforcement.grader"
                )
            try:
                validate_grader(grader)
            except (ReinforgeError, ValueError, KeyError, TypeError) as e:
                raise APIError(
                    400, f"method.reinforcement.grader: {e}", param="method.reinforcement.grader"
                ) from None
        job_id = new_id("ftjob")
        run_dir = data_dir / "jobs" / job_id
        try:
            build_config(
                method,
                model_path,
                files["training_file"].path,
                files["validation_file"].path if "validation_file" in files else None,
                str(run_dir),
                req.seed or 0,
                files["training_file"].rows,
            )
        except ReinforgeError as e:
            raise APIError(400, str(e), param="method", code="invalid_value") from None
        j = Job(
            id=job_id,
            owner=owner,
            model=req.model,
            model_path=model_path,
            method=method,
            training_file=req.training_file,
            validation_file=req.validation_file,
            suffix=req.suffix,
            seed=req.seed if req.seed is not None else 0,
            user_metadata=req.metadata,
            status="queued",
            run_dir=str(run_dir),
            created_at=time.time(),
            attempts=0,
            resume=False,
        )
        with sf() as s:
            s.add(j)
            s.flush()  # the job row first: events reference it
            add_event(s, job_id, f"Created fine-tuning job: {job_id}")
            add_event(
                s, job_id, "Validated training file" + (" and validation file" if req.validation_file else "")
            )
            s.commit()
            return job_obj(j, [])

    @app.get("/v1/fine_tuning/jobs")
    def list_jobs(after: str | None = None, limit: int = 20, owner: str = Owner):
        with sf() as s:
            q = select(Job).where(Job.owner == owner)
            if after:
                q = q.where(Job.created_at < get_job(s, owner, after).created_at)
            jobs = s.scalars(q.order_by(Job.created_at.desc()).limit(limit + 1)).all()
            return page([job_obj(j, result_files(s, j)) for j in jobs], limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    def retrieve_job(job_id: str, owner: str = Owner):
        with sf() as s:
            j = get_job(s, owner, job_id)
            return job_obj(j, result_files(s, j))

    def control(job_id: str, owner: str, action: str) -> dict:
        with sf() as s:
            j = get_job(s, owner, job_id)
            if action == "cancel":
                if j.status in TERMINAL:
                    raise APIError(400, f"job {job_id} is already {j.status}", code="invalid_state")
                if j.status == "running":
                    j.control = "cancel"
                    add_event(s, j.id, "Cancel requested")
                else:
                    j.status, j.finished_at = "cancelled", time.time()
                    add_event(s, j.id, "Job cancelled")
            elif action == "pause":
                if j.status not in ("running", "queued"):
                    raise APIError(
                        400,
                        f"job {job_id} is {j.status}; only queued or running jobs pause",
                        code="invalid_state",
                    )
                if j.status == "running":
                    j.control = "pause"
                    add_event(s, j.id, "Pause requested")
                else:
                    j.status = "paused"
                    add_event(s, j.id, "Job paused")
            else:
                if j.status != "paused":
                    raise APIError(
                        400, f"job {job_id} is {j.status}; only paused jobs resume", code="invalid_state"
                    )
                j.status, j.resume = "queued", True
                add_event(s, j.id, "Job resumed; queued to continue from its last checkpoint")
            s.commit()
            return job_obj(j, [])

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: str, owner: str = Owner):
        return control(job_id, owner, "cancel")

    @app.post("/v1/fine_tuning/jobs/{job_id}/pause")
    def pause_job(job_id: str, owner: str = Owner):
        return control(job_id, owner, "pause")

    @app.post("/v1/fine_tuning/jobs/{job_id}/resume")
    def resume_job(job_id: str, owner: str = Owner):
        return control(job_id, owner, "resume")

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    def list_events(job_id: str, after: str | None = None, limit: int = 20, owner: str = Owner):
        with sf() as s:
            get_job(s, owner, job_id)
            q = select(EventRow).where(EventRow.job_id == job_id)
            if after:
                q = q.where(EventRow.seq < int(after.removeprefix("ftevent-")))
            rows = s.scalars(q.order_by(EventRow.seq.desc()).limit(limit + 1)).all()
            return page([event_obj(e) for e in rows], limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}/metrics")
    def list_metrics(job_id: str, since: int = 0, owner: str = Owner):
        """reinforge extension: every metrics record after event sequence ``since``, oldest first."""
        with sf() as s:
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

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def list_checkpoints(job_id: str, after: str | None = None, limit: int = 10, owner: str = Owner):
        with sf() as s:
            get_job(s, owner, job_id)
            q = select(CheckpointRow).where(CheckpointRow.job_id == job_id)
            if after:
                a = s.get(CheckpointRow, after)
                if a is not None:
                    q = q.where(CheckpointRow.step < a.step)
            rows = [
                c for c in s.scalars(q.order_by(CheckpointRow.step.desc())).all() if Path(c.path).exists()
            ]
            return page([checkpoint_obj(c) for c in rows[: limit + 1]], limit)

    # ------------------------------------------------------------------ graders
    @app.post("/v1/fine_tuning/alpha/graders/run")
    async def grader_run(req: GraderRun, owner: str = Owner):
        from reinforge.serve.graders import run_grader

        item = dict(req.item or {})
        if req.reference_answer is not None:
            item.setdefault("reference_answer", req.reference_answer)
        try:
            return await run_in_threadpool(run_grader, req.grader, req.model_sample, item)
        except (ReinforgeError, ValueError, KeyError, TypeError) as e:
            raise APIError(400, f"grader: {e}", param="grader") from None

    @app.post("/v1/fine_tuning/alpha/graders/validate")
    def grader_validate(req: GraderValidate, owner: str = Owner):
        from reinforge.serve.graders import validate_grader

        try:
            return validate_grader(req.grader)
        except (ReinforgeError, ValueError, KeyError, TypeError) as e:
            raise APIError(400, f"grader: {e}", param="grader") from None

    # ------------------------------------------------------------------ chat
    async def loaded(owner: str, model_id: str):
        if model_id.startswith("ft:"):  # a database look-up
            path = await run_in_threadpool(resolve_model, owner, model_id)
        else:
            path = resolve_model(owner, model_id)
        if path is None:
            raise APIError(
                404,
                f"The model '{model_id}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        lm = pool.cached(path)
        if lm is not None:
            return lm
        try:
            return await run_in_threadpool(pool.get, path)
        except ReinforgeError as e:
            raise APIError(400, str(e), param="model") from None

    @app.post("/v1/chat/completions")
    async def chat(req: ChatCompletion, owner: str = Owner):
        from reinforge.models.chat import encode_prompt
        from reinforge.models.generation import SamplingParams

        if not req.messages:
            raise APIError(400, "messages: must be a non-empty list", param="messages")
        if not 1 <= req.n <= 16:
            raise APIError(400, "n: must be between 1 and 16", param="n")
        lm = await loaded(owner, req.model)
        try:
            msgs = [{"role": m.get("role", "user"), "content": m.get("content") or ""} for m in req.messages]
            ids = encode_prompt(lm.tokenizer, msgs)
        except Exception as e:  # noqa: BLE001 - a template error is the request's fault
            raise APIError(400, f"messages: cannot render ({e})", param="messages") from None
        max_tokens = req.max_completion_tokens or req.max_tokens or 64
        params = SamplingParams(
            temperature=req.temperature, top_p=req.top_p, max_tokens=max_tokens, n=req.n, seed=req.seed
        )
        if req.stream:
            return StreamingResponse(sse_chunks(lm, req.model, ids, params), media_type="text/event-stream")
        out = await lm.submit_async(ids, params)
        return completion_response(req.model, out, len(ids))

    def sse_chunks(lm, model_id: str, ids: list[int], params):
        cid, created = f"chatcmpl-{new_id('s')[2:]}", int(time.time())

        def chunk(index: int, delta: dict, finish: str | None) -> str:
            body = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
            }
            return f"data: {json.dumps(body)}\n\n"

        yield from (chunk(i, {"role": "assistant", "content": ""}, None) for i in range(params.n))
        for i, text, finish in lm.stream(ids, params):
            if text:
                yield chunk(i, {"content": text}, None)
            if finish:
                yield chunk(i, {}, finish)
        yield "data: [DONE]\n\n"

    # ------------------------------------------------------------------ UI
    app.include_router(feedback_router(sf, owner_of, resolve_model, pool))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/health", include_in_schema=False)
    def health():
        return {"ok": True}

    return app
