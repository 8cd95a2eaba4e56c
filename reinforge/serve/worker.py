"""Job workers: separate processes that take queued jobs from the database and train them.

Life of a job (the table is ``serve/states.py``; every status change here goes through it): ``queued`` ->
(a worker claims it atomically) ``running`` -> ``succeeded`` | ``failed`` | ``cancelled`` | ``paused``. The
API never trains; for a running job it only writes ``control`` ("cancel" / "pause"), which the trainer's
``should_stop`` reads after every step (it then checkpoints and returns). A cancel not honoured within
``CANCEL_GRACE_S`` ends the worker process; the server starts a fresh one. The worker trains the config
resolved when the job was created (``job.config``, see ``reinforge.openai_compat``).

A worker that dies (killed, crashed, server restarted) leaves its job ``running``; the server puts such a
job back in the queue with ``resume`` set, so the next worker continues from its last checkpoint, or marks
it ``failed`` with the reason after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from reinforge.errors import ReinforgeError
from reinforge.graders.base import GraderError
from reinforge.openai_compat import job_config, run_training, stored_config
from reinforge.serve.db import CheckpointRow, FileRow, Job, add_event, make_engine, new_id, session_factory
from reinforge.serve.states import CANCELLED, FAILED, PAUSED, QUEUED, RUNNING, SUCCEEDED, check, move

CANCEL_GRACE_S = 5.0
MAX_ATTEMPTS = 3
HEARTBEAT_S = 1.0

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
    """Atomically move the oldest queued job to running under ``token``; None when the queue is empty."""
    with sf() as s:
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
        with self.sf() as s:
            job = s.get(Job, self.job_id)
            kind = rec.get("kind", "train")
            msg = f"Step {rec.get('step')}" + (" validation" if kind == "eval" else "")
            data = {**openai_metrics(rec), "kind": kind, "metrics": rec}
            add_event(s, self.job_id, msg, type="metrics", data=data)
            register_checkpoints(s, job, self.metrics_by_step)
            job.heartbeat_at = time.time()
            s.commit()

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
            with self.sf() as s:
                job = s.get(Job, self.job_id)
                if job.worker != self.token:
                    continue
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

    def run(self) -> None:
        with self.sf() as s:
            job = s.get(Job, self.job_id)
            resume = job.resume or (Path(job.run_dir) / "metrics.jsonl").exists()
            add_event(
                s, job.id, f"Resuming job (attempt {job.attempts})" if resume else "Fine-tuning job started"
            )
            s.commit()
            method, stored = job.method, job.config
        threading.Thread(target=self.watch, daemon=True).start()
        try:
            cfg = stored_config(method, stored or legacy_config(self.sf, self.job_id))
            summary = run_training(cfg, resume, self.on_step, self.should_stop)
            self.finish(summary, None)
        except GraderError as e:  # a template naming a missing field, or a grader failing every grade
            self.finish(
                None, {"code": "grader_error", "message": str(e), "param": "method.reinforcement.grader"}
            )
        except ReinforgeError as e:
            self.finish(None, {"code": "invalid_training_config", "message": str(e), "param": None})
        except Exception as e:  # noqa: BLE001 - a job failure is recorded, never lost
            traceback.print_exc()
            self.finish(
                None, {"code": "internal_error", "message": f"{type(e).__name__}: {e}", "param": None}
            )
        finally:
            self.done.set()

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


# ---------------------------------------------------------------------------------------------- recovery


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


class WorkerPool:
    """Starts ``n`` worker processes and restarts any that dies, requeueing the job it held."""

    def __init__(self, db_url: str, data_dir: Path, n: int):
        self.db_url, self.data_dir, self.n = db_url, data_dir, n
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
            f"w{i}",
        ]
        self.procs[i] = subprocess.Popen(cmd)

    def start(self) -> None:
        for i in range(self.n):
            self.spawn(i)
        threading.Thread(target=self._supervise, daemon=True).start()

    def _supervise(self) -> None:
        last_sweep = time.time()
        while not self.stopping.wait(1.0):
            for i, p in list(self.procs.items()):
                if p.poll() is not None and not self.stopping.is_set():
                    recover_jobs(
                        self.sf,
                        f"worker process exited with code {p.returncode}",
                        token_prefix=f"w{i}:{p.pid}:",
                    )
                    self.spawn(i)
            if time.time() - last_sweep > 10:
                recover_jobs(self.sf, "worker heartbeat lost", stale_after=60)
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
        job_id = claim_next(sf, token)
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
