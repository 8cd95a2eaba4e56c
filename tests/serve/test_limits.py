"""The service's limits on the real app: JSON body size (413), active jobs per key (429), rate limits on
graders/run and chat (429 + Retry-After), and a real uvicorn on loopback that a slow client cannot hold."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import uvicorn
from fastapi.testclient import TestClient

from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.command import listen
from reinforge.serve.db import create_key
from reinforge.serve.limits import uvicorn_limits
from tests.serve.helpers import STRING_CHECK, free_port, rft_rows


def served(tmp_path, **limits):
    app = create_app(ServeSettings(data_dir=tmp_path, **limits))
    keys = [{"Authorization": f"Bearer {create_key(app.state.service.engine, n)[1]}"} for n in ("a", "b")]
    return TestClient(app), *keys


def upload(client, h, body: bytes):
    return client.post(
        "/v1/files", headers=h, files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"}
    )


def test_json_body_over_the_limit_is_413(tmp_path):
    client, ha, _ = served(tmp_path, max_json_bytes=1000)
    big = {"model": "tiny:addition:1m", "messages": [{"role": "user", "content": "x" * 2000}]}
    r = client.post("/v1/chat/completions", headers=ha, json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert "1000 bytes" in r.json()["error"]["message"] and "--max-json-mb" in r.json()["error"]["message"]
    chunks = (b"x" * 500 for _ in range(4))  # chunked: no Content-Length to check up front
    r = client.post("/v1/fine_tuning/alpha/graders/validate", headers=ha, content=chunks)
    assert r.status_code == 413
    # an upload has its own, larger limit
    rows = "".join(json.dumps(r) + "\n" for r in rft_rows() * 10).encode()
    assert len(rows) > 1000 and upload(client, ha, rows).status_code == 200


def test_active_jobs_per_key_are_capped(tmp_path):
    client, ha, hb = served(tmp_path, max_active_jobs_per_key=1)
    body = "".join(json.dumps(r) + "\n" for r in rft_rows()).encode()
    fa, fb = upload(client, ha, body).json()["id"], upload(client, hb, body).json()["id"]
    method = {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}}

    def create(h, fid):
        return client.post(
            "/v1/fine_tuning/jobs",
            headers=h,
            json={"model": "tiny:addition:1m", "training_file": fid, "method": method},
        )

    first = create(ha, fa)
    assert first.status_code == 200
    r = create(ha, fa)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert "limit is 1" in r.json()["error"]["message"] and "--max-active-jobs-per-key" in r.text
    assert create(hb, fb).status_code == 200  # another key's quota is its own
    client.post(f"/v1/fine_tuning/jobs/{first.json()['id']}/cancel", headers=ha)
    assert create(ha, fa).status_code == 200  # a cancelled job no longer counts


@pytest.mark.parametrize(
    "path,setting,body",
    [
        (  # a cheap valid grade
            "/v1/fine_tuning/alpha/graders/run",
            "grader_runs_per_minute",
            {"grader": STRING_CHECK, "model_sample": "4", "item": {"answer": "4"}},
        ),
        (  # refused after the limiter (n out of range): no model is loaded
            "/v1/chat/completions",
            "chat_per_minute",
            {"model": "tiny:addition:1m", "messages": [{"role": "user", "content": "1+1"}], "n": 99},
        ),
    ],
)
def test_rate_limits_answer_429_with_retry_after(tmp_path, path, setting, body):
    client, ha, hb = served(tmp_path, **{setting: 2})
    assert [client.post(path, headers=ha, json=body).status_code for _ in range(2)][0] in (200, 400)
    r = client.post(path, headers=ha, json=body)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 30  # 2 a minute: the next token within 30 s
    assert "--" + setting.replace("_", "-") in r.json()["error"]["message"]
    assert client.post(path, headers=hb, json=body).status_code != 429  # per key


@pytest.fixture
def live_server(tmp_path):
    """The real app on a real uvicorn (in a thread) with the service's connection limits, short timeouts."""
    port = free_port()
    sock = listen("127.0.0.1", port)
    app = create_app(ServeSettings(data_dir=tmp_path))
    config = uvicorn.Config(app, log_level="warning", **uvicorn_limits(0.5, 1, 100))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield port
    server.should_exit = True
    thread.join(30)
    sock.close()


def closed_by_server(port: int, send: bytes) -> bytes:
    """Send ``send`` and read until the server closes; what it answered (a 30 s read timeout fails)."""
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.settimeout(30)
        c.sendall(send)
        got = b""
        while chunk := c.recv(65536):
            got += chunk
        return got


@pytest.mark.parametrize(
    "send",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # a head that never ends
        b"POST /v1/fine_tuning/alpha/graders/validate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",  # stalls
        b"",  # connects and says nothing
    ],
)
def test_slow_clients_are_disconnected(live_server, send):
    assert closed_by_server(live_server, send) == b""  # closed without an answer, not held open


def test_idle_keep_alive_connection_is_closed_after_a_request(live_server):
    answer = closed_by_server(live_server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"ok":true}')
