"""Storage on a real PostgreSQL server (the ``pg_db`` fixture: Debian's ``postgresql`` package; skipped if absent)."""

from __future__ import annotations

import time

import httpx
import pytest

from reinforge.serve.db import create_key, lookup_key, make_engine
from tests.helpers import wait_for, write_jsonl
from tests.serve.helpers import STRING_CHECK, quick_rft_method, rft_rows, start_server

pytestmark = pytest.mark.postgres


def test_keys_on_postgres(pg_db):
    postgres_url = pg_db
    eng = make_engine(postgres_url)
    key_id, key = create_key(eng, "pg")
    assert lookup_key(eng, key).id == key_id and lookup_key(eng, key + "x") is None


def test_api_queue_and_recovery_on_postgres(pg_db, tmp_path):
    """The API's rows, the atomic claim and crash recovery: the SQL that must behave the same on both databases."""
    from fastapi.testclient import TestClient

    from reinforge.serve.app import ServeSettings, create_app
    from reinforge.serve.db import Job, session_factory
    from reinforge.serve.pool import recover_jobs
    from reinforge.serve.worker import claim_next

    postgres_url = pg_db
    client = TestClient(create_app(ServeSettings(data_dir=tmp_path, db_url=postgres_url)))
    h = {"Authorization": f"Bearer {create_key(make_engine(postgres_url), 'pg2')[1]}"}
    body = write_jsonl(tmp_path / "t.jsonl", rft_rows()).read_bytes()
    fid = client.post(
        "/v1/files", headers=h, files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"}
    ).json()["id"]
    method = {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}}
    ids = [
        client.post(
            "/v1/fine_tuning/jobs",
            headers=h,
            json={"model": "tiny:addition:1m", "training_file": fid, "method": method},
        ).json()["id"]
        for _ in range(3)
    ]
    sf = session_factory(make_engine(postgres_url))
    claimed = [claim_next(sf, f"w{i}:1:x") for i in range(3)]
    assert sorted(claimed) == sorted(ids), "each queued job is claimed exactly once"
    assert recover_jobs(sf, "Server restarted", token_prefix="w1:") == 1
    with sf() as s:
        requeued = s.get(Job, claimed[1])
        assert requeued.status == "queued" and requeued.resume and requeued.worker is None
    events = client.get(f"/v1/fine_tuning/jobs/{claimed[1]}/events", headers=h).json()["data"]
    assert "resumes from its last checkpoint" in events[0]["message"]
    page = client.get("/v1/fine_tuning/jobs?limit=2", headers=h).json()
    assert page["has_more"] and len(page["data"]) == 2


@pytest.mark.slow
def test_job_runs_end_to_end_on_postgres(pg_db, tmp_path):
    srv = start_server(tmp_path / "data", db=pg_db)
    try:
        key = srv.new_key("pg-user")
        c = httpx.Client(base_url=srv.url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60)
        body = write_jsonl(tmp_path / "t.jsonl", rft_rows()).read_bytes()
        fid = c.post("/files", files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"}).json()["id"]
        job = c.post(
            "/fine_tuning/jobs",
            json={
                "model": "tiny:addition:1m",
                "training_file": fid,
                "method": quick_rft_method(steps=2, beta=0.0),
            },
        ).json()
        t0 = time.time()
        wait_for(
            lambda: c.get(f"/fine_tuning/jobs/{job['id']}").json()["status"] in ("succeeded", "failed"),
            timeout=300,
        )
        done = c.get(f"/fine_tuning/jobs/{job['id']}").json()
        assert done["status"] == "succeeded", (done["error"], time.time() - t0)
        assert c.get(f"/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
        reply = c.post(
            "/chat/completions",
            json={
                "model": done["fine_tuned_model"],
                "max_tokens": 4,
                "messages": [{"role": "user", "content": "10+10"}],
            },
        )
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] is not None
    finally:
        srv.stop()
