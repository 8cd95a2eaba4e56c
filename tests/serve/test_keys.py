"""Key lifecycle through the real CLI (`reinforge keys create|list|revoke`) and the real app: a revoked or
expired key is refused at once, an admin key sees every key's jobs."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from reinforge.cli import app as cli_app
from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import ApiKey, default_db_url, make_engine
from tests.serve.helpers import STRING_CHECK, rft_rows


def keys(data_dir, *args: str):
    return CliRunner().invoke(cli_app, ["keys", *args, "--data-dir", str(data_dir)])


def new_key(data_dir, *args: str) -> tuple[str, str]:
    """(key id, key) from `keys create`'s line: '... API key <id> (...) ...: <key>'."""
    r = keys(data_dir, "create", "--name", "t", *args)
    assert r.exit_code == 0, r.output
    words = r.output.split()
    return words[words.index("key") + 1], words[-1]


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def served(tmp_path):
    return tmp_path, TestClient(create_app(ServeSettings(data_dir=tmp_path)))


def test_revoked_key_is_refused_at_once(served):
    data_dir, client = served
    key_id, key = new_key(data_dir)
    assert client.get("/v1/files", headers=bearer(key)).status_code == 200  # the server has now seen it
    listed = keys(data_dir, "list").output
    assert key_id in listed and "active" in listed and key not in listed  # the key itself is never shown
    r = keys(data_dir, "revoke", key_id)
    assert r.exit_code == 0, r.output
    r = client.get("/v1/files", headers=bearer(key))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert "revoked" in keys(data_dir, "list").output


def test_expired_key_is_refused_at_once(served):
    data_dir, client = served
    key_id, key = new_key(data_dir, "--expires-in", "30d")
    assert client.get("/v1/models", headers=bearer(key)).status_code == 200
    line = next(x for x in keys(data_dir, "list").output.splitlines() if key_id in x)
    assert "active" in line and line.count("-") >= 4  # created and expiry dates
    with make_engine(default_db_url(data_dir)).begin() as conn:  # the 30 days pass
        conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(expires_at=1.0))
    assert client.get("/v1/models", headers=bearer(key)).status_code == 401
    assert "expired" in keys(data_dir, "list").output


@pytest.mark.parametrize(
    "args,words",
    [
        (["create", "--name", "x", "--expires-in", "30"], "--expires-in '30'"),  # no unit
        (["create", "--name", "x", "--expires-in", "-1d"], "positive number"),  # not a lifetime
        (["revoke", "key-nope"], "no such key"),  # unknown id
    ],
)
def test_key_command_errors_are_one_line(tmp_path, args, words):
    r = keys(tmp_path, *args)
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_admin_api_lists_creates_and_revokes_keys(served):
    data_dir, client = served
    (_, admin), (user_id, user) = new_key(data_dir, "--admin"), new_key(data_dir)
    made = client.post("/v1/keys", headers=bearer(admin), json={"name": "ci", "expires_in": 3600})
    assert (
        made.status_code == 200
        and client.get("/v1/models", headers=bearer(made.json()["key"])).status_code == 200
    )
    listed = client.get("/v1/keys", headers=bearer(admin)).json()["data"]
    assert {k["id"] for k in listed} >= {user_id, made.json()["id"]} and all("key" not in k for k in listed)
    assert client.get("/v1/keys", headers=bearer(user)).status_code == 403  # not an admin
    assert client.delete(f"/v1/keys/{user_id}", headers=bearer(admin)).json()["revoked_at"] is not None
    assert client.get("/v1/models", headers=bearer(user)).status_code == 401  # at once
    assert client.delete("/v1/keys/key-nope", headers=bearer(admin)).status_code == 404


def test_admin_key_sees_every_keys_jobs(served):
    data_dir, client = served
    (_, alice), (_, bob), (_, admin) = new_key(data_dir), new_key(data_dir), new_key(data_dir, "--admin")
    body = "".join(json.dumps(r) + "\n" for r in rft_rows()).encode()
    fid = client.post(
        "/v1/files", headers=bearer(alice), files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"}
    ).json()["id"]
    method = {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}}
    job = client.post(
        "/v1/fine_tuning/jobs",
        headers=bearer(alice),
        json={"model": "tiny:addition:1m", "training_file": fid, "method": method},
    ).json()["id"]
    assert [j["id"] for j in client.get("/v1/fine_tuning/jobs", headers=bearer(admin)).json()["data"]] == [
        job
    ]
    assert client.get(f"/v1/fine_tuning/jobs/{job}", headers=bearer(admin)).status_code == 200
    assert client.get("/v1/fine_tuning/jobs", headers=bearer(bob)).json()["data"] == []
    assert client.get(f"/v1/fine_tuning/jobs/{job}", headers=bearer(bob)).status_code == 404
    assert "admin" in keys(data_dir, "list").output
