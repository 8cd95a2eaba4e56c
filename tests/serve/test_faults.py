"""Faults the service rides out: a worker killed with SIGKILL mid-job, a full disk during an upload and
during a checkpoint, a database restart mid-job. (A judge answering 429/500 or hanging:
tests/graders/test_model_graders.py.)"""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from reinforge.openai_compat import job_config, run_training, stored_config
from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import (
    EventRow,
    Job,
    add_event,
    create_key,
    default_db_url,
    make_engine,
    session_factory,
)
from reinforge.serve.worker import JobRun
from reinforge.train.checkpoint import latest_checkpoint
from tests.helpers import wait_for, write_jsonl
from tests.serve.helpers import (
    add_running_job,
    api,
    long_job,
    quick_rft_method,
    rft_rows,
    start_server,
    status,
    train_steps,
)

RFT = quick_rft_method(max_new_tokens=4, beta=0.0)


def checkpoint_steps(c, job_id: str) -> list[int]:
    return [ck["step_number"] for ck in c.get(f"/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]]


def messages(c, job_id: str) -> list[str]:
    return [e["message"] for e in c.get(f"/fine_tuning/jobs/{job_id}/events?limit=500").json()["data"]]


# ---------------------------------------------------------------------------------------------- kill -9


def test_resumed_job_drops_the_metrics_of_the_steps_it_trains_again(tmp_path):
    """A worker killed after step 7 with its last checkpoint at step 5: the next one trains 6 and 7
    again, so their logged metrics go (or the job's metrics would show them twice)."""
    sf = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    run_dir = tmp_path / "run"
    job_id = add_running_job(sf, write_jsonl(tmp_path / "t.jsonl", rft_rows()), RFT, "m", run_dir)
    (run_dir / "checkpoints" / "step-5").mkdir(parents=True)
    (run_dir / "checkpoints" / "step-5" / "trainer_state.json").write_text('{"step": 5}')
    with sf() as s:
        for step in range(1, 8):
            add_event(s, job_id, f"Step {step}", type="metrics", data={"step": step, "kind": "train"})
        add_event(s, job_id, "Step 5 validation", type="metrics", data={"step": 5, "kind": "eval"})
        s.get(Job, job_id).resume = True
        s.commit()
    resume, _, _ = JobRun(sf, job_id, "w0:1:x", tmp_path).start()
    with sf() as s:
        events = s.scalars(select(EventRow).where(EventRow.job_id == job_id).order_by(EventRow.seq)).all()
    assert resume
    assert [(e.data["step"], e.data["kind"]) for e in events if e.type == "metrics"] == [
        (1, "train"), (2, "train"), (3, "train"), (4, "train"), (5, "train"), (5, "eval")
    ]  # fmt: skip
    assert events[-1].message == "Resuming job (attempt 1) from step 5; steps 6-7 are trained again"


@pytest.mark.slow  # a real server and a 60-step job, killed and resumed: ~60-130 s on 2 busy cores
def test_killed_worker_resumes_from_its_checkpoint_with_no_lost_or_repeated_step(tmp_path):
    n_steps = 60
    srv = start_server(tmp_path / "data")
    try:
        c = api(srv, srv.new_key())
        job_id = long_job(c, tmp_path, steps=n_steps, save_interval=5)
        # kill once a checkpoint exists and steps past it are logged: the steps a resume trains again
        wait_for(
            lambda: (ck := checkpoint_steps(c, job_id)) and max(train_steps(c, job_id)) > max(ck), every=0.05
        )
        sf = session_factory(make_engine(default_db_url(srv.data_dir)))
        with sf() as s:
            token = s.get(Job, job_id).worker
        assert token and status(c, job_id) == "running", "the job ended before the kill: give it more steps"
        os.kill(int(token.split(":")[1]), signal.SIGKILL)  # the worker process only; the server lives
        wait_for(lambda: status(c, job_id) in ("succeeded", "failed"), timeout=300)
        job = c.get(f"/fine_tuning/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job["error"]
        assert sorted(train_steps(c, job_id)) == list(range(1, n_steps + 1))  # none lost, none twice
        said = messages(c, job_id)
        assert any("worker process exited with code -9" in m for m in said), said
        assert any(m.startswith("Resuming job (attempt 2) from step ") for m in said), said
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------- full disk


def test_upload_to_a_full_disk_is_a_clear_error_and_keeps_nothing(small_disk, tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"  # the database elsewhere: only the files' disk is full
    client = TestClient(create_app(ServeSettings(data_dir=small_disk.path, db_url=db)))
    h = {"Authorization": f"Bearer {create_key(make_engine(db), 'a')[1]}"}
    rows = "".join(json.dumps(r) + "\n" for r in rft_rows() * 4000).encode()  # ~1.6 MB on a 1 MiB disk
    r = client.post(
        "/v1/files", headers=h, files={"file": ("big.jsonl", rows)}, data={"purpose": "fine-tune"}
    )
    assert r.status_code == 507, r.text
    err = r.json()["error"]
    assert err["code"] == "storage_error" and "No space left on device" in err["message"]
    assert "big.jsonl" in err["message"] and "nothing was kept" in err["message"]
    assert list((small_disk.path / "files").iterdir()) == []  # no half-written file
    assert client.get("/v1/files", headers=h).json()["data"] == []
    small = "".join(json.dumps(r) + "\n" for r in rft_rows()).encode()
    r = client.post("/v1/files", headers=h, files={"file": ("t.jsonl", small)}, data={"purpose": "fine-tune"})
    assert r.status_code == 200  # the space was given back


def test_checkpoint_on_a_full_disk_fails_the_job_clearly_and_keeps_the_last_one(
    small_disk, tiny_addition_dir, tmp_path
):
    """The first checkpoint fits, the second does not: the job fails with ``storage_error``, step-1 stays
    whole (no step-2.tmp left), and once there is room the run resumes from it."""
    small_disk.resize("14m")  # one checkpoint of the 0.9M-parameter model (weights + Adam state) is ~11 MB
    sf = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    train = write_jsonl(tmp_path / "t.jsonl", rft_rows())
    run_dir = small_disk.path / "run"
    cfg = job_config(RFT, str(tiny_addition_dir), str(train), None, str(run_dir), 0, 6)
    stored = {**cfg.model_dump(mode="json"), "steps": 3, "save_interval": 1, "eval_interval": 0}
    add_running_job(sf, train, RFT, tiny_addition_dir, run_dir, config=stored)
    JobRun(sf, "ftjob-1", "w0:1:x", tmp_path).run()
    with sf() as s:
        job = s.get(Job, "ftjob-1")
    assert job.status == "failed" and job.error["code"] == "storage_error", job.error
    assert "step-2: could not write checkpoint (No space left on device)" in job.error["message"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-1"]
    assert latest_checkpoint(run_dir).name == "step-1"
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line)  # whole lines only
    small_disk.resize("64m")
    summary = run_training(stored_config(RFT, stored), True, lambda rec: None, lambda: False)
    assert summary["steps"] == 3 and latest_checkpoint(run_dir).name == "step-3"


# ---------------------------------------------------------------------------------------------- database


def test_worker_waits_out_a_database_restart(fresh_postgres, tiny_addition_dir, tmp_path):
    """With the database down, a worker's call blocks (retrying) instead of failing the job, and goes on
    once it is back: the dead pooled connections are replaced."""
    sf = session_factory(make_engine(fresh_postgres.url))
    train = write_jsonl(tmp_path / "t.jsonl", rft_rows())
    add_running_job(sf, train, RFT, tiny_addition_dir, tmp_path / "run")
    run = JobRun(sf, "ftjob-1", "w0:1:x", tmp_path)
    assert run.should_stop() is False  # a pooled connection now exists
    fresh_postgres.stop()
    answers: list[bool] = []
    asking = threading.Thread(target=lambda: answers.append(run.should_stop()))
    asking.start()
    asking.join(1.0)
    assert asking.is_alive() and not answers  # still waiting for the database, not failed
    fresh_postgres.start()
    asking.join(60)
    assert answers == [False]
    run.record_step({"step": 1, "kind": "train", "reward/mean": 0.5})
    with sf() as s:
        assert s.get(Job, "ftjob-1").heartbeat_at is not None


@pytest.mark.slow  # a job through a real server on PostgreSQL: ~60 s on 2 busy cores
def test_job_goes_on_across_a_database_restart(fresh_postgres, tmp_path):
    n_steps = 40
    srv = start_server(tmp_path / "data", db=fresh_postgres.url)
    try:
        c = api(srv, srv.new_key())
        job_id = long_job(c, tmp_path, steps=n_steps, save_interval=10)
        wait_for(lambda: len(train_steps(c, job_id)) >= 3, every=0.05)
        assert status(c, job_id) == "running", "the job ended before the restart: give it more steps"
        fresh_postgres.stop()  # every connection of the API and the worker dies
        fresh_postgres.start()
        wait_for(lambda: status(c, job_id) in ("succeeded", "failed"), timeout=300)
        job = c.get(f"/fine_tuning/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job["error"]
        assert sorted(train_steps(c, job_id)) == list(range(1, n_steps + 1))
    finally:
        srv.stop()
