"""Job routes in-process (no workers): a job is validated once and stores its config; control moves by the table."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from reinforge.openai_compat import job_config
from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import Job, create_key, default_db_url, make_engine, session_factory
from tests.serve.helpers import STRING_CHECK, rft_rows


@pytest.fixture
def api(tmp_path):
    client = TestClient(create_app(ServeSettings(data_dir=tmp_path)))
    eng = make_engine(default_db_url(tmp_path))
    client.headers["Authorization"] = f"Bearer {create_key(eng, 'alice')[1]}"
    body = "".join(json.dumps(r) + "\n" for r in rft_rows()).encode()
    fid = client.post("/v1/files", files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"}).json()[
        "id"
    ]
    return client, session_factory(eng), fid


def create(client, fid, grader=STRING_CHECK):
    method = {
        "type": "reinforcement",
        "reinforcement": {"grader": grader, "hyperparameters": {"batch_size": 2}},
    }
    return client.post("/v1/fine_tuning/jobs", json={"model": "tiny:addition:1m", "training_file": fid,
                                                     "method": method, "seed": 3})  # fmt: skip


def test_job_stores_the_config_it_was_validated_with(api):
    client, sf, fid = api
    job = create(client, fid).json()
    with sf() as s:
        row = s.get(Job, job["id"])
        want = job_config(row.method, row.model_path, row.config["train_file"], None, row.run_dir, 3, 6)
        assert row.config == want.model_dump(mode="json") and row.config["prompts_per_step"] == 2


def test_bad_grader_is_refused_at_creation(api):
    client, _, fid = api
    r = create(client, fid, grader={**STRING_CHECK, "operation": "is"})
    err = r.json()["error"]
    assert r.status_code == 400 and err["param"] == "method.reinforcement.grader", err
    assert "operation: 'is'; use eq, ne, like or ilike" in err["message"]


def test_control_of_a_queued_job_follows_the_table(api):
    client, _, fid = api
    jid = create(client, fid).json()["id"]
    post = lambda action: client.post(f"/v1/fine_tuning/jobs/{jid}/{action}")  # noqa: E731
    r = post("resume")
    assert (
        r.status_code == 400
        and r.json()["error"]["message"] == f"job {jid} is queued; only paused jobs resume"
    )
    assert post("pause").json()["status"] == "paused"
    assert post("resume").json()["status"] == "queued"
    assert post("cancel").json()["status"] == "cancelled"
    r = post("pause")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_state"


def test_a_wandb_integration_becomes_the_jobs_tracker(api):
    client, sf, fid = api
    method = {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}}
    wandb = {"project": "p", "name": "n", "tags": ["t"]}
    body = {"model": "tiny:addition:1m", "training_file": fid, "method": method}
    job = client.post(
        "/v1/fine_tuning/jobs", json={**body, "integrations": [{"type": "wandb", "wandb": wandb}]}
    ).json()
    assert job["integrations"] == [{"type": "wandb", "wandb": wandb}]  # as OpenAI echoes it
    with sf() as s:
        config = s.get(Job, job["id"]).config
    assert (config["report_to"], config["tracker_args"]) == (["wandb"], {"wandb": wandb})
    bad = client.post("/v1/fine_tuning/jobs", json={**body, "integrations": [{"type": "neptune"}]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "integrations"
    assert "only 'wandb'" in bad.json()["error"]["message"]
