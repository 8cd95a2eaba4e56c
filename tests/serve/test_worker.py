"""The worker trains the config resolved when the job was created, and moves the job by the state table."""

from __future__ import annotations

import json

from reinforge.openai_compat import job_config
from reinforge.serve.db import Job, make_engine, session_factory
from reinforge.serve.worker import JobRun
from tests.helpers import write_jsonl
from tests.serve.helpers import add_running_job, quick_rft_method, rft_rows


def test_worker_trains_the_stored_config(tiny_addition_dir, tmp_path):
    sf = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    train = write_jsonl(tmp_path / "t.jsonl", rft_rows())
    method = quick_rft_method(max_new_tokens=4, beta=0.0)
    run_dir = tmp_path / "run"
    cfg = job_config(method, str(tiny_addition_dir), str(train), None, str(run_dir), 0, 6)
    assert cfg.steps is None  # the method alone would train 3 steps (6 rows, 2 per step)
    stored = {**cfg.model_dump(mode="json"), "steps": 2, "eval_interval": 0}
    add_running_job(sf, train, method, tiny_addition_dir, run_dir, config=stored)
    JobRun(sf, "ftjob-1", "w0:1:x", tmp_path).run()
    with sf() as s:
        job = s.get(Job, "ftjob-1")
        assert job.status == "succeeded" and job.finished_at is not None, job.error
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]  # the stored steps=2, not 3
