"""Workers on several machines against one database (``reinforge worker``, serve/pool.py): claims never collide,
a start touches no other machine's running job, and a job whose worker is SIGKILLed is requeued once its
heartbeat stops and finished by another worker from its last checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from reinforge.serve.db import EventRow, Job, make_engine, session_factory
from reinforge.serve.pool import recover_at_start, supervisor_name
from reinforge.serve.worker import claim_next
from tests.helpers import wait_for
from tests.serve.helpers import api, long_job, start_server, status, train_steps


def queue_jobs(sf, n: int) -> None:
    with sf() as s:
        for i in range(n):
            s.add(Job(id=f"ftjob-{i}", owner="o", model="m", model_path="m", method={}, training_file="f",
                      status="queued", run_dir="r", created_at=1000.0 + i))  # fmt: skip
        s.commit()


def claim_all(db_url: str, threads: int = 6) -> list[str]:
    """Every claim ``threads`` workers (a session factory each) make until the queue is empty."""
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        sf = session_factory(make_engine(db_url))
        while (job_id := claim_next(sf, f"host{k}-worker-w0:{k}:x")) is not None:
            with lock:
                claimed.append(job_id)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    return claimed


def test_claims_never_collide_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    queue_jobs(session_factory(make_engine(url)), 24)
    claimed = claim_all(url)
    assert sorted(claimed) == sorted(f"ftjob-{i}" for i in range(24))  # each exactly once


@pytest.mark.postgres
def test_claims_never_collide_on_postgres(pg_db):
    sf = session_factory(make_engine(pg_db))
    queue_jobs(sf, 24)
    claimed = claim_all(pg_db)  # SELECT ... FOR UPDATE SKIP LOCKED
    assert sorted(claimed) == sorted(f"ftjob-{i}" for i in range(24))
    with sf() as s:
        jobs = s.scalars(select(Job)).all()
        assert {j.status for j in jobs} == {"running"} and {j.attempts for j in jobs} == {1}


def running(sf, job_id: str, token: str, heartbeat_age: float) -> None:
    with sf() as s:
        s.add(Job(id=job_id, owner="o", model="m", model_path="m", method={}, training_file="f",
                  status="running", worker=token, attempts=1, heartbeat_at=time.time() - heartbeat_age,
                  run_dir="r"))  # fmt: skip
        s.commit()


def test_a_start_requeues_only_its_own_and_silent_jobs(tmp_path):
    sf = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    here = supervisor_name("serve")
    running(sf, "ftjob-mine", f"{here}-w0:11:a", heartbeat_age=0)  # its own worker died with it
    running(sf, "ftjob-other", "otherhost-worker7-w0:12:b", heartbeat_age=0)  # alive on another machine
    running(sf, "ftjob-silent", "otherhost-worker7-w1:13:c", heartbeat_age=600)  # that machine died
    assert recover_at_start(sf, here, heartbeat_timeout=60) == 2
    with sf() as s:
        got = {j.id: (j.status, j.worker) for j in s.scalars(select(Job)).all()}
    assert got["ftjob-other"] == ("running", "otherhost-worker7-w0:12:b")
    assert got["ftjob-mine"] == ("queued", None) and got["ftjob-silent"] == ("queued", None)


def test_serve_start_leaves_another_machines_running_job(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'reinforge.db'}"
    sf = session_factory(make_engine(url))
    running(sf, "ftjob-other", "otherhost-worker7-w0:12:b", heartbeat_age=0)
    srv = start_server(data, db=url, workers=0)  # before: every start requeued every running job
    try:
        with sf() as s:
            job = s.get(Job, "ftjob-other")
            assert (job.status, job.worker) == ("running", "otherhost-worker7-w0:12:b")
    finally:
        srv.stop()


def start_worker(db: str, data_dir, heartbeat_timeout: float) -> subprocess.Popen:
    args = [sys.executable, "-m", "reinforge", "worker", "--db", db, "--data-dir", str(data_dir)]
    log = (data_dir.parent / f"worker-{time.monotonic_ns()}.log").open("ab")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*args, "--heartbeat-timeout", str(heartbeat_timeout)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_kill9_of_a_worker_requeues_its_job_to_the_other(pg_db, tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, db=pg_db, workers=0)  # the API only
    workers = [start_worker(pg_db, data, heartbeat_timeout=10) for _ in range(2)]
    try:
        c = api(srv, srv.new_key("cluster"))
        job_id = long_job(c, tmp_path, steps=8, save_interval=2)
        sf = session_factory(make_engine(pg_db))

        def holder_after_a_checkpoint() -> str | None:
            with sf() as s:
                job = s.get(Job, job_id)
                ckpts = list((Path(job.run_dir) / "checkpoints").glob("step-*"))
                return job.worker if job.worker and ckpts else None

        token = wait_for(holder_after_a_checkpoint, timeout=600)
        supervisor = int(token.split("-worker")[1].split("-w")[0])  # <host>-worker<pid>-w<i>:<pid>:<hex>
        victim = next(w for w in workers if w.pid == supervisor)
        os.killpg(victim.pid, signal.SIGKILL)  # the supervisor and its worker: a machine gone
        victim.wait(10)
        wait_for(lambda: status(c, job_id) in ("succeeded", "failed"), timeout=900)
        assert status(c, job_id) == "succeeded"
        assert train_steps(c, job_id) == list(range(1, 9))  # no step lost or repeated
        with sf() as s:
            job = s.get(Job, job_id)
            assert job.attempts == 2
            events = [e.message for e in s.scalars(select(EventRow).where(EventRow.job_id == job_id))]
        assert any("worker heartbeat lost" in m for m in events), events
        assert any(m.startswith("Resuming job (attempt 2) from step") for m in events), events
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(30)
        srv.stop()
