"""Jobs in worker processes: pause/resume/cancel within seconds; a killed server loses no job."""

from __future__ import annotations

import pytest

from tests.helpers import wait_for, write_jsonl
from tests.serve.helpers import (
    STRING_CHECK,
    add_running_job,
    api,
    long_job,
    quick_rft_method,
    rft_rows,
    start_server,
    status,
    train_steps,
)


def test_pause_resume_cancel(server, api_key, tmp_path):
    c = api(server, api_key)
    job_id = long_job(c, tmp_path, steps=500)
    wait_for(lambda: len(train_steps(c, job_id)) >= 1)
    c.post(f"/fine_tuning/jobs/{job_id}/pause")
    wait_for(lambda: status(c, job_id) == "paused", timeout=120)
    paused_at = max(train_steps(c, job_id))
    assert c.get(f"/fine_tuning/jobs/{job_id}/checkpoints").json()["data"], "pause must leave a checkpoint"
    assert c.post(f"/fine_tuning/jobs/{job_id}/resume").json()["status"] == "queued"
    wait_for(lambda: max(train_steps(c, job_id)) > paused_at + 1)
    steps = train_steps(c, job_id)
    assert len(steps) == len(set(steps)), f"a resumed job repeats no step: {steps}"
    c.post(f"/fine_tuning/jobs/{job_id}/cancel")
    wait_for(lambda: status(c, job_id) == "cancelled", timeout=120, every=0.2)
    # a running job is cancelled by its worker when the trainer stops: no step is logged after it
    stopped_at = max(train_steps(c, job_id))
    assert stopped_at < 500, "cancel must stop the job mid-run"
    assert c.post(f"/fine_tuning/jobs/{job_id}/cancel").status_code == 400  # already finished
    assert status(c, job_id) == "cancelled" and max(train_steps(c, job_id)) == stopped_at


def test_killed_server_resumes_job(tmp_path):
    n_steps = 60
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        key = srv.new_key()
        c = api(srv, key)
        # enough steps that the job is still running when its first checkpoint shows up (a step of this
        # tiny job takes tens of milliseconds)
        job_id = long_job(c, tmp_path, steps=n_steps, save_interval=1)
        wait_for(lambda: c.get(f"/fine_tuning/jobs/{job_id}/checkpoints").json()["data"], every=0.05)
        assert status(c, job_id) == "running", "the job finished before the kill: the test needs more steps"
        srv.kill()  # API and worker die together, mid-job
        srv = start_server(data)
        c = api(srv, key)
        wait_for(lambda: status(c, job_id) in ("succeeded", "failed"), timeout=300)
        job = c.get(f"/fine_tuning/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job["error"]
        messages = [
            e["message"] for e in c.get(f"/fine_tuning/jobs/{job_id}/events?limit=200").json()["data"]
        ]
        assert any("Server restarted" in m for m in messages) and any("Resuming job" in m for m in messages)
        steps = train_steps(c, job_id)
        assert max(steps) == n_steps and min(steps) == 1
    finally:
        srv.stop()


RETURNS_STR = {"type": "python", "name": "str", "source": "def grade(sample, item):\n    return 'x'\n"}


def finished(client, job_id: str):
    """The job once it has left queued/running."""
    return wait_for(
        lambda: (j := client.fine_tuning.jobs.retrieve(job_id)).status not in ("queued", "running") and j
    )


@pytest.mark.slow  # two jobs through a real server: ~45-90 s on 2 busy cores
def test_failing_grader_fails_the_job_with_the_reason(server, api_key, tmp_path):
    """A template typo (found before training) and a python grader that returns a string (every grade of
    step 1 fails) each end the job ``failed`` with OpenAI's error shape, read through the official client."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0, timeout=60)
    train = client.files.create(
        file=write_jsonl(tmp_path / "t.jsonl", rft_rows()).open("rb"), purpose="fine-tune"
    )
    typo = {**STRING_CHECK, "reference": "{{item.answr}}"}
    for grader, needle in [
        (typo, "grader 'exact' grader.reference: '{{item.answr}}': the row has no field 'answr'"),
        (
            RETURNS_STR,
            "failed on 4/4 grades at step 1 (the first step; the limit is all): python_grader_runtime_error",
        ),
    ]:
        job = client.fine_tuning.jobs.create(
            model="tiny:addition:1m",
            training_file=train.id,
            method={
                "type": "reinforcement",
                "reinforcement": {
                    "grader": grader,
                    "hyperparameters": {"batch_size": 2, "compute_multiplier": 0.25},
                },
            },
        )
        job = finished(client, job.id)
        assert job.status == "failed" and job.fine_tuned_model is None
        assert job.error.code == "grader_error" and job.error.param == "method.reinforcement.grader"
        assert needle in job.error.message, job.error.message
        events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        assert any(m.startswith("Job failed: ") and needle in m for m in events), events


def test_grader_failing_every_grade_fails_the_job_in_its_worker(tiny_addition_dir, tmp_path):
    """The worker's side of the above, in this process: the job ends ``failed`` with ``job.error`` set."""
    from reinforge.serve.db import Job, make_engine, session_factory
    from reinforge.serve.worker import JobRun

    sf = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    train = write_jsonl(tmp_path / "t.jsonl", rft_rows())
    method = quick_rft_method(RETURNS_STR, max_new_tokens=4)
    add_running_job(sf, train, method, tiny_addition_dir, tmp_path / "run")
    JobRun(sf, "ftjob-1", "w0:1:x", tmp_path).run()
    with sf() as s:
        job = s.get(Job, "ftjob-1")
        assert job.status == "failed" and job.fine_tuned_model is None and job.worker is None
        assert job.error["code"] == "grader_error" and job.error["param"] == "method.reinforcement.grader"
        assert "failed on 4/4 grades at step 1" in job.error["message"]
        assert "python_grader_runtime_error: grade() returned str 'x'" in job.error["message"]
