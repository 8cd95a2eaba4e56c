"""Job workers: separate processes that take queued jobs from the database and train them.

Life of a job (the table is ``serve/states.py``; every status change here goes through it): ``queued`` ->
(a worker claims it atomically) ``running`` -> ``succeeded`` | ``failed`` | ``cancelled`` | ``paused``. The
API never trains; for a running job it only writes ``control`` ("cancel" / "pause"), which the trainer's
``should_stop`` reads after every step (it then checkpoints and returns). A cancel not honoured within
``CANCEL_GRACE_S`` ends the worker process; the server starts a fresh one. The worker trains the config
resolved when the job was created (``job.config``, see ``reinforge.openai_compat``).

A worker that dies (``kill -9``, a crash, a server restart) leaves its job ``running``; its supervisor, or
once its heartbeat has stopped for ``--heartbeat-timeout`` any other machine's, puts it back in the queue
(``serve/pool.py``) and the next worker continues from the last checkpoint, dropping
the metrics of the steps after it, which it redoes: no step is lost or counted twice. A database restart
stalls a worker (each of its database calls is retried, ``db.retry_db``) instead of failing its job; a
full disk fails the job with ``storage_error``, its checkpoints intact.
"""

from __future__ import annotations

import argparse
import errno
import os
import secrets
import signal
import sys
import threading
import time
import traceback
from functools import partial
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from reinforge.errors import ReinforgeError, StorageError
from reinforge.graders.base import GraderError
from reinforge.openai_compat import job_config, run_training, stored_config
from reinforge.serve.db import (
    CheckpointRow,
    EventRow,
    FileRow,
    Job,
    add_event,
    db_retried,
    make_engine,
    new_id,
    retry_db,
    session_factory,
)
from reinforge.serve.states import CANCELLED, FAILED, PAUSED, QUEUED, RUNNING, SUCCEEDED, check, move

CANCEL_GRACE_S = 5.0
HEARTBEAT_S = 1.0
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}  # the disk refused a write

# reinforge metric names -> OpenAI's names in metrics events and checkpoint metrics
OPENAI_METRICS = {
    "reward/mean": "train_mean_reward",
    "eval/reward_mean": "full_valid_mean_reward",
    "loss/total": "train_loss",
    "loss/sft": "train_loss",
    "loss/dpo": "train_loss",
    "eval/loss": "full_valid_loss",
}


def fine_tuned_name(job: Job) -> str:
    """``ft:<base>:<suffix>:<job id>`` as OpenAI names fine-tuned models."""
    return f"ft:{job.model}:{job.suffix or 'reinforge'}:{job.id}"


def openai_metrics(rec: dict) -> dict:
    out = {"step": rec.get("step")}
    for ours, theirs in OPENAI_METRICS.items():
        if ours in rec:
            out[theirs] = rec[ours]
    return out


def claim_next(sf: sessionmaker, token: str) -> str | None:
    """Atomically move the oldest queued job to running under ``token``; None when the queue is empty.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers on many machines each lock a different
    queued row without waiting on each other. SQLite (one machine): a conditional UPDATE of a queued row
    (the database serialises writers), trying the next row when another worker took this one."""
    with sf() as s:
        if s.get_bind().dialect.name == "postgresql":
            oldest = select(Job).where(Job.status == QUEUED).order_by(Job.created_at).limit(1)
            job = s.scalars(oldest.with_for_update(skip_locked=True)).first()
            if job is None:
                return None
            move(job, RUNNING)
            job.worker, job.heartbeat_at, job.control = token, time.time(), None
            job.attempts += 1
            s.commit()
            return job.id
        ids = s.scalars(select(Job.id).where(Job.status == QUEUED).order_by(Job.created_at).limit(5)).all()
        for job_id in ids:
            res = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == QUEUED)
                .values(
                    status=check(QUEUED, RUNNING),
                    worker=token,
                    attempts=Job.attempts + 1,
                    heartbeat_at=time.time(),
                    control=None,
                )
            )
            s.commit()
            if res.rowcount == 1:
                return job_id
    return None


def register_checkpoints(s: Session, job: Job, metrics_by_step: dict[int, dict]) -> None:
    from reinforge.train.checkpoint import list_checkpoints

    known = set(s.scalars(select(CheckpointRow.step).where(CheckpointRow.job_id == job.id)).all())
    for path in list_checkpoints(Path(job.run_dir)):
        step = int(path.name.split("-")[1])
        if step in known:
            continue
        s.add(
            CheckpointRow(
                id=new_id("ftckpt"),
                job_id=job.id,
                owner=job.owner,
                step=step,
                model_id=f"{fine_tuned_name(job)}:ckpt-step-{step}",
                path=str(path),
                metrics=metrics_by_step.get(step, {"step": step}),
                created_at=time.time(),
            )
        )
        add_event(s, job.id, f"Checkpoint created at step {step}")


def resume_step(run_dir: Path) -> int:
    """The step a resumed run continues after: its newest finished checkpoint's (0: none, it starts over)."""
    from reinforge.train.checkpoint import latest_checkpoint

    last = latest_checkpoint(run_dir)
    return int(last.name.split("-")[1]) if last else 0


def forget_steps_after(s: Session, job_id: str, step: int) -> list[int]:
    """Delete the job's metrics events of steps after ``step`` (a resumed run trains them again, so
    they would show twice); returns those steps."""
    rows = s.scalars(select(EventRow).where(EventRow.job_id == job_id, EventRow.type == "metrics")).all()
    step_of = {r: int((r.data or {}).get("step") or 0) for r in rows}
    late = [r for r in rows if step_of[r] > step]
    for r in late:
        s.delete(r)
    return sorted({step_of[r] for r in late})


def legacy_config(sf: sessionmaker, job_id: str) -> dict:
    """The config of a job created before configs were stored with jobs: resolved from its method now."""
    with sf() as s:
        job = s.get(Job, job_id)
        ids = [job.training_file, job.validation_file or ""]
        files = {f.id: f for f in s.scalars(select(FileRow).where(FileRow.id.in_(ids))).all()}
    train = files[job.training_file]
    val = files[job.validation_file].path if job.validation_file else None
    cfg = job_config(job.method, job.model_path, train.path, val, job.run_dir, job.seed, train.rows)
    return cfg.model_dump(mode="json")


class JobRun:
    """Runs one claimed job in this process, mirroring progress into the database."""

    def __init__(
        self,
        sf: sessionmaker,
        job_id: str,
        token: str,
        data_dir: Path,
        shutdown: threading.Event | None = None,
    ):
        self.sf, self.job_id, self.token, self.data_dir = sf, job_id, token, data_dir
        self.shutdown = shutdown or threading.Event()
        self.metrics_by_step: dict[int, dict] = {}
        self.tokens = 0
        self.stop_reason: str | None = None
        self.done = threading.Event()

    # -- the trainer's callbacks
    def on_step(self, rec: dict) -> None:
        m = self.metrics_by_step.setdefault(int(rec.get("step", 0)), {"step": rec.get("step")})
        m.update(openai_metrics(rec))
        if "perf/tokens_per_s" in rec and "perf/step_seconds" in rec:
            self.tokens += int(rec["perf/tokens_per_s"] * rec["perf/step_seconds"])
        self.record_step(rec)

    @db_retried
    def record_step(self, rec: dict) -> None:
        with self.sf() as s:
            job = s.get(Job, self.job_id)
            kind = rec.get("kind", "train")
            msg = f"Step {rec.get('step')}" + (" validation" if kind == "eval" else "")
            data = {**openai_metrics(rec), "kind": kind, "metrics": rec}
            add_event(s, self.job_id, msg, type="metrics", data=data)
            register_checkpoints(s, job, self.metrics_by_step)
            job.heartbeat_at = time.time()
            s.commit()

    @db_retried
    def should_stop(self) -> bool:
        with self.sf() as s:
            job = s.get(Job, self.job_id)
            if job.worker != self.token:  # the lease moved to another worker: stop quietly
                self.stop_reason = "lost"
            elif job.control in ("cancel", "pause"):
                self.stop_reason = job.control
            elif self.shutdown.is_set():
                self.stop_reason = "shutdown"
        return self.stop_reason is not None

    # -- a side thread: heartbeat, and the hard stop for a cancel the trainer does not reach in time
    def watch(self) -> None:
        cancel_seen: float | None = None
        while not self.done.wait(HEARTBEAT_S):
            cancel_seen = self.beat(cancel_seen)

    @db_retried
    def beat(self, cancel_seen: float | None) -> float | None:
        """One heartbeat; returns when a cancel was first seen (None: not yet)."""
        with self.sf() as s:
            job = s.get(Job, self.job_id)
            if job.worker != self.token:
                return cancel_seen
            job.heartbeat_at = time.time()
            if job.control == "cancel":
                cancel_seen = cancel_seen or time.time()
                if time.time() - cancel_seen > CANCEL_GRACE_S:
                    move(job, CANCELLED)
                    job.worker = None
                    add_event(s, self.job_id, "Job cancelled (training stopped mid-step)")
                    s.commit()
                    os._exit(3)
            s.commit()
        return cancel_seen

    @db_retried
    def start(self) -> tuple[bool, dict, dict | None]:
        """The job's start event; on resume, the metrics of the steps after the checkpoint it resumes
        from are dropped, since they are trained again. Returns (resume, method, stored config)."""
        with self.sf() as s:
            job = s.get(Job, self.job_id)
            resume = job.resume or (Path(job.run_dir) / "metrics.jsonl").exists()
            if resume:
                step = resume_step(Path(job.run_dir))
                redone = forget_steps_after(s, job.id, step)
                again = f"; steps {min(redone)}-{max(redone)} are trained again" if redone else ""
                add_event(s, job.id, f"Resuming job (attempt {job.attempts}) from step {step}{again}")
            else:
                add_event(s, job.id, "Fine-tuning job started")
            s.commit()
            return resume, job.method, job.config

    def run(self) -> None:
        resume, method, stored = self.start()
        threading.Thread(target=self.watch, daemon=True).start()
        try:
            cfg = stored_config(method, stored or legacy_config(self.sf, self.job_id))
            summary = run_training(cfg, resume, self.on_step, self.should_stop)
            self.finish(summary, None)
        except GraderError as e:  # a template naming a missing field, or a grader failing every grade
            self.finish(
                None, {"code": "grader_error", "message": str(e), "param": "method.reinforcement.grader"}
            )
        except StorageError as e:  # a full disk while checkpointing: the earlier checkpoints are intact
            self.finish(None, {"code": "storage_error", "message": str(e), "param": None})
        except ReinforgeError as e:
            self.finish(None, {"code": "invalid_training_config", "message": str(e), "param": None})
        except OSError as e:
            if e.errno not in STORAGE_ERRNOS:
                traceback.print_exc()
            code = "storage_error" if e.errno in STORAGE_ERRNOS else "internal_error"
            self.finish(None, {"code": code, "message": f"{e.filename or type(e).__name__}: {e.strerror or e}",
                               "param": None})  # fmt: skip
        except Exception as e:  # noqa: BLE001 - a job failure is recorded, never lost
            traceback.print_exc()
            self.finish(
                None, {"code": "internal_error", "message": f"{type(e).__name__}: {e}", "param": None}
            )
        finally:
            self.done.set()

    @db_retried
    def finish(self, summary: dict | None, error: dict | None) -> None:
        steps = (summary or {}).get("steps")
        with self.sf() as s:
            job = s.get(Job, self.job_id)
            if job.worker != self.token:
                return
            register_checkpoints(s, job, self.metrics_by_step)
            job.worker, job.heartbeat_at = None, None
            job.trained_tokens = (job.trained_tokens or 0) + self.tokens
            if error is not None:
                move(job, FAILED)
                job.error = error
                add_event(s, job.id, f"Job failed: {error['message']}", level="error")
            elif self.stop_reason == "pause":
                move(job, PAUSED)
                job.control, job.resume = None, True
                add_event(s, job.id, f"Job paused at step {steps}")
            elif self.stop_reason == "shutdown":
                move(job, QUEUED)
                job.resume = True
                add_event(s, job.id, f"Server shutting down at step {steps}; the job resumes on restart")
            elif self.stop_reason == "cancel":
                move(job, CANCELLED)
                job.control = None
                add_event(s, job.id, "Job cancelled")
            else:
                move(job, SUCCEEDED)
                job.fine_tuned_model = fine_tuned_name(job)
                metrics = Path(job.run_dir) / "metrics.jsonl"
                if metrics.exists():
                    s.add(
                        FileRow(
                            id=new_id("file"),
                            owner=job.owner,
                            filename=f"{job.id}-metrics.jsonl",
                            purpose="fine-tune-results",
                            bytes=metrics.stat().st_size,
                            path=str(metrics),
                            kind="results",
                            rows=0,
                            created_at=time.time(),
                        )
                    )
                add_event(s, job.id, f"New fine-tuned model created: {job.fine_tuned_model}")
                add_event(s, job.id, "The job has successfully completed")
            s.commit()


def die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent (the server) dies, so no orphan keeps training."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main(db_url: str, data_dir: str, name: str, poll_s: float = 0.3) -> None:
    die_with_parent()
    parent = os.getppid()
    sf = session_factory(make_engine(db_url))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set() if not stop.is_set() else sys.exit(0))
    while not stop.is_set():
        if os.getppid() != parent:
            return
        token = f"{name}:{os.getpid()}:{secrets.token_hex(4)}"
        job_id = retry_db(partial(claim_next, sf, token), patience_s=None)
        if job_id is None:
            stop.wait(poll_s)
            continue
        JobRun(sf, job_id, token, Path(data_dir), stop).run()  # SIGTERM: checkpoint, requeue, exit


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="reinforge serve job worker")
    ap.add_argument("--db", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--name", default="w0")
    a = ap.parse_args()
    worker_main(a.db, a.data_dir, a.name)
