"""The FastAPI app: OpenAI-compatible files, fine-tuning jobs, graders, models and chat completions,
plus human-feedback queues and the web UI: one router per resource, assembled here.

Every ``/v1`` route needs ``Authorization: Bearer <key>``; a key sees only what it created (others' ids
answer 404). Errors use OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``
(``serve/errors.py``). Training never runs here: a job is a database row that a worker process
(``serve/worker.py``) picks up; its statuses follow one table (``serve/states.py``).

==========================  ==================================================
``serve/files.py``          ``/v1/files``: upload (validated), list, content, delete
``serve/models.py``         ``/v1/models``: built-in, local and fine-tuned models
``serve/jobs.py``           ``/v1/fine_tuning/jobs``: create, control, events, metrics, checkpoints
``serve/graders.py``        ``/v1/fine_tuning/alpha/graders``: run, validate
``serve/chat.py``           ``/v1/chat/completions`` (streaming too)
``serve/feedback.py``       ``/v1/feedback``: queues to judge, preference export
``serve/annotation.py``     ``/v1/feedback``: several annotators per queue, labels, quality, rounds
``serve/keys.py``           ``/v1/keys``: list, create, revoke (admin keys only)
``serve/studies.py``        ``/v1/studies``: a key's tune studies, read-only
``serve/trials.py``         ``/v1/trials``: ask, try and tell a study's trials by hand
``serve/ui.py``             ``/``, ``/static``, ``/health``
==========================  ==================================================

>>> from fastapi.testclient import TestClient
>>> import tempfile
>>> client = TestClient(create_app(ServeSettings(data_dir=tempfile.mkdtemp())))
>>> r = client.get("/v1/models")
>>> r.status_code, r.json()["error"]["code"]
(401, 'invalid_api_key')
"""

from __future__ import annotations

from fastapi import FastAPI

from reinforge.serve import (
    annotation,
    chat,
    feedback,
    files,
    graders,
    jobs,
    keys,
    models,
    studies,
    trials,
    ui,
)
from reinforge.serve.context import ServeSettings, Service
from reinforge.serve.errors import install_handlers
from reinforge.serve.limits import BodyLimit

__all__ = ["ServeSettings", "create_app"]


def create_app(settings: ServeSettings) -> FastAPI:
    app = FastAPI(title="reinforge", version="0.1.0", docs_url="/docs")
    app.state.service = Service(settings)
    install_handlers(app)
    for module in (files, models, jobs, graders, chat, feedback, annotation, keys, studies, trials, ui):
        app.include_router(module.router)
    # uploads (multipart) up to max_upload_bytes plus the form's overhead, other bodies max_json_bytes
    app.add_middleware(
        BodyLimit, json_bytes=settings.max_json_bytes, upload_bytes=settings.max_upload_bytes + 2**20
    )
    app.mount("/static", ui.static_files(), name="static")
    return app
