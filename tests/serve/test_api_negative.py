"""Negative paths: auth, isolation between keys, malformed uploads, request validation, upload limit."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient

from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import create_key, default_db_url, make_engine
from tests.serve.helpers import STRING_CHECK, rft_rows


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    """In-process app (no workers) for checks that need no training."""
    d = tmp_path_factory.mktemp("app")
    client = TestClient(create_app(ServeSettings(data_dir=d, max_upload_bytes=2000)))
    eng = make_engine(default_db_url(d))
    keys = {name: create_key(eng, name)[1] for name in ("alice", "bob")}
    return client, {n: {"Authorization": f"Bearer {k}"} for n, k in keys.items()}


def upload(client, headers, body: bytes, name: str = "train.jsonl"):
    return client.post(
        "/v1/files", headers=headers, files={"file": (name, body)}, data={"purpose": "fine-tune"}
    )


def good_file() -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rft_rows()).encode()


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/v1/models"),
        ("get", "/v1/files"),
        ("get", "/v1/fine_tuning/jobs"),
        ("post", "/v1/chat/completions"),
        ("post", "/v1/fine_tuning/alpha/graders/run"),
    ],
)
def test_no_key_is_401(app_client, method, path):
    client, _ = app_client
    r = getattr(client, method)(path)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = getattr(client, method)(path, headers={"Authorization": "Bearer rf-wrong"})
    assert r.status_code == 401


def test_other_keys_objects_are_404(app_client):
    client, h = app_client
    fid = upload(client, h["alice"], good_file()).json()["id"]
    job = client.post(
        "/v1/fine_tuning/jobs",
        headers=h["alice"],
        json={
            "model": "tiny:addition:1m",
            "training_file": fid,
            "method": {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}},
        },
    ).json()
    for path in (
        f"/v1/files/{fid}",
        f"/v1/files/{fid}/content",
        f"/v1/fine_tuning/jobs/{job['id']}",
        f"/v1/fine_tuning/jobs/{job['id']}/events",
        f"/v1/fine_tuning/jobs/{job['id']}/checkpoints",
    ):
        assert client.get(path, headers=h["bob"]).status_code == 404, path
        assert client.get(path, headers=h["alice"]).status_code == 200, path
    assert client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=h["bob"]).status_code == 404
    assert client.get("/v1/fine_tuning/jobs", headers=h["bob"]).json()["data"] == []
    # bob cannot train on alice's file either
    r = client.post(
        "/v1/fine_tuning/jobs",
        headers=h["bob"],
        json={"model": "tiny:addition:1m", "training_file": fid, "method": {"type": "supervised"}},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "training_file"
    # cancelling a queued job is immediate
    assert (
        client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=h["alice"]).json()["status"]
        == "cancelled"
    )


@pytest.mark.parametrize(
    "body,line,words",
    [
        (
            b'{"messages": [{"role": "user", "content": "1+1"}]}\n{"messages": [\n',
            2,
            "invalid JSON",
        ),  # cut line
        (
            b'{"messages": [{"role": "user", "content": "1+1"}]}\n\n{"messages": []}\n',
            3,
            "non-empty",
        ),  # empty turns
        (b'{"messages": [{"role": "robot", "content": "x"}]}\n', 1, "role"),  # unknown role
        (
            b'{"messages": [{"role": "user", "content": "a"}]}\n{"prompt": "p", "chosen": "a", "rejected": "b"}\n',
            2,
            "one format",
        ),  # mixed formats
        (b'{"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 0, 1]}\n', 1, "permutation"),
        (
            b'{"messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function"}]}\n',
            1,
            "tools[0]",
        ),  # a tool with no function: named at upload, not when the job trains
    ],
)
def test_malformed_file_is_400_naming_the_line(app_client, body, line, words):
    client, h = app_client
    r = upload(client, h["alice"], body, name="bad.jsonl")
    err = r.json()["error"]
    assert (
        r.status_code == 400 and err["message"].startswith(f"bad.jsonl:{line}:") and words in err["message"]
    ), err


def test_upload_limit_and_validation_errors_use_openai_shape(app_client):
    client, h = app_client
    r = upload(client, h["alice"], b'{"messages": [{"role": "user", "content": "' + b"x" * 3000 + b'"}]}\n')
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    r = client.post("/v1/fine_tuning/jobs", headers=h["alice"], json={"training_file": "file-x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    fid = upload(client, h["alice"], good_file()).json()["id"]
    r = client.post(
        "/v1/fine_tuning/jobs",
        headers=h["alice"],
        json={
            "model": "tiny:addition:1m",
            "training_file": fid,
            "method": {
                "type": "reinforcement",
                "reinforcement": {
                    "grader": STRING_CHECK,
                    "hyperparameters": {"n_epochs": 1, "warp_factor": 9},
                },
            },
        },
    )
    assert r.status_code == 400 and "warp_factor" in r.json()["error"]["message"]
    r = client.post(
        "/v1/fine_tuning/jobs",
        headers=h["alice"],
        json={"model": "no-such-model", "training_file": fid, "method": {"type": "supervised"}},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_available"
    r = client.post(
        "/v1/chat/completions",
        headers=h["alice"],
        json={"model": "ft:nope", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_file_lifecycle(app_client):
    client, h = app_client
    f = upload(client, h["alice"], good_file(), name="mine.jsonl").json()
    assert client.get(f"/v1/files/{f['id']}/content", headers=h["alice"]).content == good_file()
    assert client.delete(f"/v1/files/{f['id']}", headers=h["alice"]).json()["deleted"] is True
    assert client.get(f"/v1/files/{f['id']}", headers=h["alice"]).status_code == 404


def test_session_server_rejects_missing_key(server):
    assert httpx.get(server.url + "/v1/fine_tuning/jobs").status_code == 401
