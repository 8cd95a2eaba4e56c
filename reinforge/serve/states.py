"""The job state machine: every status a fine-tuning job takes, and every move between them, in one table.

OpenAI's job states, less ``validating_files`` (a file is validated when it is uploaded and again when a
job is created, so a job starts ``queued``) and plus ``paused`` (reinforge's pause and resume)::

    queued ──(a worker claims it)──► running ──► succeeded | failed | cancelled
      │ ▲                              │ │
      │ └──────────── queued again ────┘ │   the worker was lost or is shutting down: resume on restart
      ├──(pause)──► paused ◄─────────────┘   a pause the trainer honoured at a step's end
      │               │ (resume) ──► queued
      └──(cancel)─────┴─(cancel)──► cancelled

The API and the workers change ``job.status`` only through :func:`move` (or :func:`check` for the atomic
claim), so a refused move is a bug found where it happens, not a job in an impossible state. The API's
actions (:data:`ACTIONS`) either move a job or, while it runs, ask its worker by setting ``job.control``.

>>> can("queued", "running"), can("succeeded", "queued")
(True, False)
"""

from __future__ import annotations

import time
from typing import Any

from reinforge.errors import ReinforgeError

QUEUED, RUNNING, PAUSED = "queued", "running", "paused"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
INITIAL = QUEUED  # a created job

TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, PAUSED, CANCELLED}),  # claimed; paused or cancelled before it starts
    # done, failed, cancelled, paused at a step's end, or queued again (worker lost, server shutting down)
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED, PAUSED, QUEUED}),
    PAUSED: frozenset({QUEUED, CANCELLED}),  # resumed (from its last checkpoint), or cancelled
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}

ASK_WORKER = "ask_worker"  # an action on a running job: set job.control; its worker stops and moves it
# API action -> {status it applies to: the status it moves the job to, or ASK_WORKER}
ACTIONS: dict[str, dict[str, str]] = {
    "cancel": {QUEUED: CANCELLED, PAUSED: CANCELLED, RUNNING: ASK_WORKER},
    "pause": {QUEUED: PAUSED, RUNNING: ASK_WORKER},
    "resume": {PAUSED: QUEUED},
}


class TransitionError(ReinforgeError):
    """A status change the table does not allow."""


def can(src: str, dst: str) -> bool:
    return dst in TRANSITIONS.get(src, ())


def check(src: str, dst: str) -> str:
    """``dst`` when a job may move from ``src`` to it; else TransitionError."""
    if not can(src, dst):
        allowed = ", ".join(sorted(TRANSITIONS.get(src, ()))) or "nothing (it is final)"
        raise TransitionError(f"job status {src!r} -> {dst!r}: not allowed; from {src!r}: {allowed}")
    return dst


def move(job: Any, dst: str) -> None:
    """Set ``job.status`` to ``dst`` (checked); a final status also stamps ``job.finished_at``."""
    job.status = check(job.status, dst)
    if dst in TERMINAL:
        job.finished_at = time.time()


def refusal(job_id: str, status: str, action: str) -> str | None:
    """Why ``action`` does not apply to a job in ``status``, or None when it does."""
    if status in ACTIONS[action]:
        return None
    if status in TERMINAL:
        return f"job {job_id} is already {status}"
    return f"job {job_id} is {status}; only {' or '.join(ACTIONS[action])} jobs {action}"
