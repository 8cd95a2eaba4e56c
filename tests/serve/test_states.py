"""The job state machine as a table: every allowed move, and every other pair of states refused."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from reinforge.serve.states import ACTIONS, ASK_WORKER, STATES, TERMINAL, TransitionError, can, move, refusal

ALLOWED = {
    ("queued", "running"): "a worker claims it",
    ("queued", "paused"): "paused before a worker took it",
    ("queued", "cancelled"): "cancelled before a worker took it",
    ("running", "succeeded"): "the trainer finished",
    ("running", "failed"): "the trainer raised, or the worker was lost too often",
    ("running", "cancelled"): "the worker honoured a cancel (or the grace period ran out)",
    ("running", "paused"): "the worker honoured a pause at a step's end",
    ("running", "queued"): "worker lost or server shutting down: resumes from its checkpoint",
    ("paused", "queued"): "resumed",
    ("paused", "cancelled"): "cancelled while paused",
}
PAIRS = list(itertools.product(STATES, STATES))


@pytest.mark.parametrize("src,dst", [p for p in PAIRS if p in ALLOWED], ids="->".join)
def test_allowed_move(src, dst):
    job = SimpleNamespace(status=src, finished_at=None)
    move(job, dst)
    assert job.status == dst and (job.finished_at is not None) == (dst in TERMINAL)


@pytest.mark.parametrize("src,dst", [p for p in PAIRS if p not in ALLOWED], ids="->".join)
def test_refused_move(src, dst):
    job = SimpleNamespace(status=src, finished_at=None)
    assert not can(src, dst)
    with pytest.raises(TransitionError, match=f"'{src}' -> '{dst}': not allowed"):
        move(job, dst)
    assert job.status == src and job.finished_at is None  # a refused move changes nothing


@pytest.mark.parametrize(
    "action,status,outcome",
    [
        ("cancel", "queued", "cancelled"),  # at once
        ("cancel", "paused", "cancelled"),  # at once
        ("cancel", "running", ASK_WORKER),  # the worker stops at a step's end
        ("cancel", "succeeded", "job j is already succeeded"),
        ("cancel", "failed", "job j is already failed"),
        ("cancel", "cancelled", "job j is already cancelled"),
        ("pause", "queued", "paused"),  # at once
        ("pause", "running", ASK_WORKER),  # the worker checkpoints, then pauses it
        ("pause", "paused", "job j is paused; only queued or running jobs pause"),
        ("pause", "succeeded", "job j is already succeeded"),
        ("pause", "failed", "job j is already failed"),
        ("pause", "cancelled", "job j is already cancelled"),
        ("resume", "paused", "queued"),  # a worker continues from the last checkpoint
        ("resume", "queued", "job j is queued; only paused jobs resume"),
        ("resume", "running", "job j is running; only paused jobs resume"),
        ("resume", "succeeded", "job j is already succeeded"),
        ("resume", "failed", "job j is already failed"),
        ("resume", "cancelled", "job j is already cancelled"),
    ],
)
def test_api_actions(action, status, outcome):
    target = ACTIONS[action].get(status)
    if target is None:
        assert refusal("j", status, action) == outcome
    else:
        assert refusal("j", status, action) is None and target == outcome
        assert target == ASK_WORKER or can(status, target)  # every action's move is in the table
