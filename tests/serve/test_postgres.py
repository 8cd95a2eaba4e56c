"""Storage on a real PostgreSQL server, started by this test from Debian's ``postgresql`` package (skipped if absent)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import httpx
import pytest

from reinforge.serve.db import create_key, lookup_key, make_engine
from tests.helpers import wait_for, write_jsonl
from tests.serve.helpers import STRING_CHECK, free_port, rft_rows, start_server

pytestmark = pytest.mark.postgres
BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@pytest.fixture(scope="module")
def postgres_url():
    if not BIN:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg2")
    bindir = os.path.dirname(BIN[-1])
    # PostgreSQL refuses to run as root: as root, run it as `nobody` in a directory nobody owns (pytest's
    # tmp_path sits under a 0700 root directory, so this one directory lives beside it and is removed after).
    root = tempfile.mkdtemp(prefix="reinforge-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    data, port = os.path.join(root, "data"), free_port()
    try:
        subprocess.run(
            [*as_user, f"{bindir}/initdb", "-D", data, "-U", "reinforge", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                *as_user,
                f"{bindir}/pg_ctl",
                "-D",
                data,
                "-l",
                os.path.join(root, "log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"postgresql://reinforge@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_db(postgres_url, request) -> str:
    """A fresh database on the shared server for each test."""
    import psycopg2

    name = "t_" + request.node.name.lower()[:40].replace("[", "_").replace("]", "_")
    conn = psycopg2.connect(postgres_url.replace("postgresql://", "postgres://"))
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return postgres_url.rsplit("/", 1)[0] + "/" + name


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
    from reinforge.serve.worker import claim_next, recover_jobs

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
                "method": {
                    "type": "reinforcement",
                    "reinforcement": {
                        "grader": STRING_CHECK,
                        "hyperparameters": {"batch_size": 2, "compute_multiplier": 0.25},
                    },
                    "reinforge": {"steps": 2, "beta": 0.0},
                },
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
