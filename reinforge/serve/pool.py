"""The supervisor of job workers (``reinforge serve``'s, or ``reinforge worker``'s on any machine): it starts
them, restarts any that dies, and puts the job a dead worker held back in the queue.

A worker that dies (``kill -9``, a crash, a server restart) leaves its job ``running``; the job goes back
to ``queued`` with ``resume`` set, so the next worker continues from its last checkpoint (and drops the
metrics of the steps after it, which are redone: ``serve/worker.py``), or becomes ``failed`` with the
reason after ``MAX_ATTEMPTS``. The supervisor rides out a database restart (``db.retry_db``).

Across machines: a worker's lease token starts with its supervisor's name (``<host>-serve-w0``,
``<host>-worker-w1``), and every worker heartbeats its job each ``HEARTBEAT_S``. A supervisor requeues at
once only the jobs of its own dead workers; a job whose heartbeat has stopped for ``heartbeat_timeout``
seconds (its whole machine died) is requeued by whichever supervisor sweeps first. Starting a server or
a worker never touches another machine's running jobs. Clocks must agree (NTP) to well within the timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reinforge.serve.db import Job, add_event, make_engine, retry_db, session_factory
from reinforge.serve.states import CANCELLED, FAILED, PAUSED, QUEUED, RUNNING, move

MAX_ATTEMPTS = 3
HEARTBEAT_TIMEOUT_S = 60.0  # a running job whose heartbeat is older than this has lost its worker


def supervisor_name(role: str) -> str:
    """``<host>-<role>``: the prefix of the lease tokens of this machine's ``serve`` or ``worker`` workers."""
    return f"{socket.gethostname()[:24]}-{role}"


def requeue_or_fail(s: Session, job: Job, why: str) -> None:
    """A job whose worker is gone: back to the queue (resume from checkpoint), or failed after MAX_ATTEMPTS."""
    job.worker, job.heartbeat_at = None, None
    if job.control == "cancel":
        move(job, CANCELLED)
        add_event(s, job.id, f"Job cancelled ({why})")
    elif job.control == "pause":
        move(job, PAUSED)
        job.control, job.resume = None, True
        add_event(s, job.id, f"Job paused ({why})")
    elif job.attempts >= MAX_ATTEMPTS:
        move(job, FAILED)
        job.error = {
            "code": "worker_lost",
            "message": f"{why}; gave up after {job.attempts} attempts",
            "param": None,
        }
        add_event(s, job.id, f"Job failed: {job.error['message']}", level="error")
    else:
        move(job, QUEUED)
        job.resume = True
        add_event(
            s, job.id, f"{why}; the job is queued again and resumes from its last checkpoint", level="warn"
        )


def recover_jobs(
    sf: sessionmaker, why: str, token_prefix: str | None = None, stale_after: float | None = None
) -> int:
    """Requeue running jobs whose worker is gone: all (server start), one worker's, or stale heartbeats."""
    n = 0
    with sf() as s:
        for job in s.scalars(select(Job).where(Job.status == RUNNING)).all():
            if token_prefix is not None and not (job.worker or "").startswith(token_prefix):
                continue
            if stale_after is not None and job.heartbeat_at and time.time() - job.heartbeat_at < stale_after:
                continue
            requeue_or_fail(s, job, why)
            n += 1
        s.commit()
    return n


def recover_at_start(sf: sessionmaker, name: str, heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S) -> int:
    """A supervisor's start: requeue the jobs its own earlier workers held (they died with it) and those
    whose heartbeat stopped; jobs other machines' workers are running stay theirs."""
    mine = recover_jobs(sf, "Server restarted while the job was running", token_prefix=f"{name}-w")
    return mine + recover_jobs(sf, "worker heartbeat lost", stale_after=heartbeat_timeout)


class WorkerPool:
    """Starts ``n`` worker processes and restarts any that dies, requeueing the job it held; sweeps up the
    jobs of workers anywhere whose heartbeat stopped. ``gpus``: worker i sees only GPU ``gpus[i]``."""

    def __init__(
        self,
        db_url: str,
        data_dir: Path,
        n: int,
        name: str | None = None,
        gpus: list[str] | None = None,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
    ):
        self.db_url, self.data_dir, self.n = db_url, data_dir, n
        self.name, self.gpus = name or supervisor_name("serve"), gpus
        self.heartbeat_timeout = heartbeat_timeout
        self.procs: dict[int, subprocess.Popen] = {}
        self.stopping = threading.Event()
        self.sf = session_factory(make_engine(db_url))

    def spawn(self, i: int) -> None:
        cmd = [
            sys.executable,
            "-m",
            "reinforge.serve.worker",
            "--db",
            self.db_url,
            "--data-dir",
            str(self.data_dir),
            "--name",
            f"{self.name}-w{i}",
        ]
        env = None if self.gpus is None else {**os.environ, "CUDA_VISIBLE_DEVICES": self.gpus[i]}
        self.procs[i] = subprocess.Popen(cmd, env=env)  # one job at a time: one per GPU

    def start(self) -> None:
        for i in range(self.n):
            self.spawn(i)
        threading.Thread(target=self._supervise, daemon=True).start()

    def _supervise(self) -> None:
        last_sweep = time.time()
        while not self.stopping.wait(1.0):
            for i, p in list(self.procs.items()):
                if p.poll() is not None and not self.stopping.is_set():
                    why = f"worker process exited with code {p.returncode}"
                    prefix = f"{self.name}-w{i}:{p.pid}:"
                    retry_db(partial(recover_jobs, self.sf, why, token_prefix=prefix), patience_s=None)
                    self.spawn(i)
            if time.time() - last_sweep > min(10.0, self.heartbeat_timeout / 4):
                timeout = self.heartbeat_timeout
                lost = partial(recover_jobs, self.sf, "worker heartbeat lost", stale_after=timeout)
                retry_db(lost, patience_s=None)
                last_sweep = time.time()

    def stop(self) -> None:
        self.stopping.set()
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
