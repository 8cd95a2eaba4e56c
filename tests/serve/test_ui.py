"""The web UI's login: an API key traded for an HttpOnly, SameSite=Strict session cookie; CSRF-safe state
changes; logout; a revoked key ends its sessions. (The same in Chromium: test_browser.py.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import create_key, default_db_url, make_engine, revoke_key
from reinforge.serve.sessions import COOKIE, start_session

QUEUE = {"name": "q", "items": [{"prompt": "1+1", "responses": ["2", "3"]}]}


@pytest.fixture
def app(tmp_path):
    """A fresh app and one key, (client, engine, key id, key)."""
    client = TestClient(create_app(ServeSettings(data_dir=tmp_path)))
    eng = make_engine(default_db_url(tmp_path))
    key_id, key = create_key(eng, "alice")
    return client, eng, key_id, key


def login(client, key: str) -> str:
    r = client.post("/ui/login", json={"key": key})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


def test_login_sets_an_httponly_strict_cookie_and_never_echoes_the_key(app):
    client, _, key_id, key = app
    r = client.post("/ui/login", json={"key": key})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and key not in cookie and key not in r.text
    assert {"HttpOnly", "SameSite=strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    assert r.json()["key_id"] == key_id
    assert client.get("/v1/models").status_code == 200  # the cookie alone authenticates
    assert client.get("/ui/session").json()["csrf_token"] == r.json()["csrf_token"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 403),  # no CSRF token: another site's form post could be this
        ({"X-CSRF-Token": "guess"}, 403),  # a wrong token
        ({"X-CSRF-Token": None, "Origin": "http://evil.example"}, 403),  # right token, foreign origin
        ({"X-CSRF-Token": None}, 200),  # the page's own request
        ({"X-CSRF-Token": None, "Origin": "http://testserver"}, 200),  # same origin, said so
    ],
)
def test_cookie_authenticated_state_changes_need_the_csrf_token(app, headers, status):
    client, _, _, key = app
    csrf = login(client, key)
    sent = {k: csrf if v is None else v for k, v in headers.items()}
    r = client.post("/v1/feedback/queues", json=QUEUE, headers=sent)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["error"]["code"] == "csrf_failed"
        assert client.get("/v1/feedback/queues").json()["data"] == []  # nothing was created


def test_bearer_keys_need_no_csrf_token(app):
    client, _, _, key = app
    r = client.post("/v1/feedback/queues", json=QUEUE, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200


def test_logout_ends_the_session_for_good(app):
    client, _, _, key = app
    csrf = login(client, key)
    token = client.cookies[COOKIE]
    assert client.post("/ui/logout").status_code == 403  # logout is a state change too
    r = client.post("/ui/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and f'{COOKIE}=""' in r.headers["set-cookie"]
    client.cookies.set(COOKIE, token)  # a copy of the old cookie is worth nothing now
    assert client.get("/v1/models").status_code == 401
    assert client.get("/ui/session").status_code == 401


def test_revoking_the_key_ends_its_sessions(app):
    client, eng, key_id, key = app
    login(client, key)
    assert client.get("/v1/models").status_code == 200
    revoke_key(eng, key_id)
    r = client.get("/v1/models")
    assert r.status_code == 401 and "log in again" in r.json()["error"]["message"]


def test_expired_session_is_refused(app):
    client, eng, key_id, _ = app
    token, _ = start_session(eng, key_id, ttl_s=-1)
    client.cookies.set(COOKIE, token)
    assert client.get("/v1/models").status_code == 401


@pytest.mark.parametrize(
    "body, headers, status",
    [
        ({"key": "rf-not-a-key"}, {}, 401),
        ({"key": None}, {"Origin": "http://evil.example"}, 403),  # login CSRF: a foreign page logging you in
    ],
)
def test_login_refusals(app, body, headers, status):
    client, _, _, key = app
    r = client.post("/ui/login", json={"key": body["key"] or key}, headers=headers)
    assert r.status_code == status and "set-cookie" not in r.headers
