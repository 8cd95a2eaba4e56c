"""Tenant isolation on every route of the real app: another key's object is a 404 and never listed.

The test walks ``app.routes``: every route must appear in ROUTES, which says how tenant B reaches tenant
A's objects through it. A new route missing from ROUTES fails ``test_every_route_is_in_the_table``; a new
path parameter missing from OBJECTS fails ``test_other_tenants_objects_are_404``.
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import CheckpointRow, Job, create_key
from reinforge.tune.space import Float
from reinforge.tune.study import Study
from tests.serve.helpers import STRING_CHECK, rft_rows

OBJECT = "object"  # a path parameter names one of A's objects: B gets 404
LISTING = "listing"  # B's list never names A's objects
BODY_REF = "body"  # the body names A's objects (BODY_REFS): B is refused, 400 or 404
OWN = "own"  # creates an object of the caller's own and reads no one else's
NO_OBJECTS = "none"  # stateless or public: holds no tenant's objects
ADMIN = "admin"  # key management: 403 for every key without the admin scope
TRIAL = "trial"  # the path names one of A's studies by file and name (and a trial number): B gets 404

ROUTES = {
    ("POST", "/v1/files"): OWN,
    ("GET", "/v1/files"): LISTING,
    ("GET", "/v1/files/{fid}"): OBJECT,
    ("GET", "/v1/files/{fid}/content"): OBJECT,
    ("DELETE", "/v1/files/{fid}"): OBJECT,
    ("GET", "/v1/models"): LISTING,
    ("GET", "/v1/models/{model_id:path}"): OBJECT,
    ("POST", "/v1/fine_tuning/jobs"): BODY_REF,
    ("GET", "/v1/fine_tuning/jobs"): LISTING,
    ("GET", "/v1/fine_tuning/jobs/{job_id}"): OBJECT,
    ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"): OBJECT,
    ("POST", "/v1/fine_tuning/jobs/{job_id}/pause"): OBJECT,
    ("POST", "/v1/fine_tuning/jobs/{job_id}/resume"): OBJECT,
    ("GET", "/v1/fine_tuning/jobs/{job_id}/events"): OBJECT,
    ("GET", "/v1/fine_tuning/jobs/{job_id}/metrics"): OBJECT,
    ("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints"): OBJECT,
    ("POST", "/v1/fine_tuning/alpha/graders/run"): NO_OBJECTS,  # grades the request's own sample
    ("POST", "/v1/fine_tuning/alpha/graders/validate"): NO_OBJECTS,
    ("POST", "/v1/chat/completions"): BODY_REF,
    ("POST", "/v1/feedback/queues"): BODY_REF,
    ("GET", "/v1/feedback/queues"): LISTING,
    ("GET", "/v1/feedback/queues/{qid}"): OBJECT,
    ("POST", "/v1/feedback/items/{item_id}"): OBJECT,
    ("GET", "/v1/feedback/queues/{qid}/export"): OBJECT,
    ("GET", "/v1/feedback/queues/{qid}/next"): OBJECT,
    ("GET", "/v1/feedback/queues/{qid}/labels"): OBJECT,
    ("GET", "/v1/feedback/queues/{qid}/quality"): OBJECT,
    ("POST", "/v1/feedback/queues/{qid}/round"): OBJECT,
    ("GET", "/v1/keys"): ADMIN,
    ("POST", "/v1/keys"): ADMIN,
    ("DELETE", "/v1/keys/{key_id}"): ADMIN,
    ("GET", "/v1/studies"): LISTING,
    ("GET", "/v1/studies/{study_id:path}"): OBJECT,
    ("POST", "/v1/trials/{file}/{name}/ask"): TRIAL,
    ("POST", "/v1/trials/{file}/{name}/{number}/try"): TRIAL,
    ("POST", "/v1/trials/{file}/{name}/{number}/tell"): TRIAL,
    ("GET", "/"): NO_OBJECTS,  # the page itself
    ("GET", "/health"): NO_OBJECTS,
    ("POST", "/ui/login"): NO_OBJECTS,  # trades a key for a session of that same key
    ("GET", "/ui/session"): NO_OBJECTS,  # the cookie's own session
    ("POST", "/ui/logout"): NO_OBJECTS,
    ("GET", "/openapi.json"): NO_OBJECTS,
    ("GET", "/docs"): NO_OBJECTS,
    ("GET", "/docs/oauth2-redirect"): NO_OBJECTS,
    ("GET", "/redoc"): NO_OBJECTS,
}

# path parameter -> the names (in the `tenant_a` dict) of A's objects it can name
OBJECTS = {
    "fid": ["file"],
    "model_id": ["model", "checkpoint_model"],
    "job_id": ["job"],
    "qid": ["queue"],
    "item_id": ["item"],
    "study_id": ["study"],
}
# bodies for routes that need one besides the path
BODIES = {
    ("POST", "/v1/feedback/items/{item_id}"): {"ranking": [1, 0]},
    ("POST", "/v1/feedback/queues/{qid}/round"): {"status": "done"},
    ("POST", "/v1/trials/{file}/{name}/{number}/try"): {"examples": 1},
    ("POST", "/v1/trials/{file}/{name}/{number}/tell"): {"values": [0.5]},
}


def body_refs(a: dict) -> dict:
    """Each BODY_REF route -> request bodies naming one of A's objects."""
    rft = {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}}
    return {
        ("POST", "/v1/fine_tuning/jobs"): [
            {"model": "tiny:addition:1m", "training_file": a["file"], "method": rft},
            {"model": "tiny:addition:1m", "training_file": a["b_file"], "validation_file": a["file"], "method": rft},
            {"model": a["model"], "training_file": a["b_file"], "method": rft},
            {"model": a["checkpoint_model"], "training_file": a["b_file"], "method": rft},
        ],
        ("POST", "/v1/chat/completions"): [
            {"model": m, "messages": [{"role": "user", "content": "1+1"}]}
            for m in (a["model"], a["checkpoint_model"])
        ],
        ("POST", "/v1/feedback/queues"): [{"prompts": ["1+1"], "models": [a["model"], "tiny:addition:1m"]}],
    }  # fmt: skip


@pytest.fixture(scope="module")
def tenants(tmp_path_factory):
    """A real app and two real keys; A owns a file, a finished job with its fine-tuned model and a
    checkpoint, and a feedback queue; B owns one file of its own."""
    d = tmp_path_factory.mktemp("iso")
    app = create_app(ServeSettings(data_dir=d))
    client, svc = TestClient(app), app.state.service
    (a_id, a_key), (_, b_key) = create_key(svc.engine, "alice"), create_key(svc.engine, "bob")
    ha, hb = {"Authorization": f"Bearer {a_key}"}, {"Authorization": f"Bearer {b_key}"}
    body = "".join(json.dumps(r) + "\n" for r in rft_rows()).encode()

    def upload(h):
        r = client.post(
            "/v1/files", headers=h, files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"}
        )
        return r.json()["id"]

    a = {"file": upload(ha), "b_file": upload(hb), "key_id": a_id}
    method = {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}}
    job = client.post(
        "/v1/fine_tuning/jobs", headers=ha, json={"model": "tiny:addition:1m", "training_file": a["file"], "method": method}
    ).json()["id"]  # fmt: skip
    ckpt_dir = d / "ckpt"
    ckpt_dir.mkdir()
    a |= {"job": job, "model": f"ft:tiny:alice:{job}", "checkpoint_model": f"ft:tiny:alice:{job}:ckpt-step-1"}
    with svc.sf() as s:  # as a worker leaves a finished job
        j = s.get(Job, job)
        j.status, j.fine_tuned_model, j.finished_at = "succeeded", a["model"], time.time()
        s.add(CheckpointRow(id="ftckpt-a1", job_id=job, owner=j.owner, step=1, model_id=a["checkpoint_model"],
                            path=str(ckpt_dir), metrics={}, created_at=time.time()))  # fmt: skip
        s.commit()
    q = client.post(
        "/v1/feedback/queues", headers=ha, json={"items": [{"prompt": "p", "responses": ["x", "y"]}]}
    )
    a["queue"] = q.json()["id"]
    a["item"] = str(client.get(f"/v1/feedback/queues/{a['queue']}", headers=ha).json()["items"][0]["id"])
    Study({"x": Float(0, 1)}, "random", storage=d / "studies" / a_id / "s.db", name="a-study").storage.close()
    a["study"] = "s.db/a-study"
    return client, ha, hb, a


def app_routes(client) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, included routers flattened (mounts hold none)."""
    return {
        (m, r.path) for r in iter_route_contexts(client.app.routes) for m in r.methods or () if m != "HEAD"
    }


def test_every_route_is_in_the_table(tenants):
    client = tenants[0]
    missing = app_routes(client) - set(ROUTES)
    assert not missing, f"add these routes to ROUTES (and their owner check to the app): {sorted(missing)}"
    stale = {r for r, kind in ROUTES.items() if kind != NO_OBJECTS} - app_routes(client)
    assert not stale, f"ROUTES names routes the app no longer has: {sorted(stale)}"


def a_views(client, ha, a) -> list:
    """What A sees of its objects: must be the same after B's attempts."""
    paths = [f"/v1/files/{a['file']}", f"/v1/fine_tuning/jobs/{a['job']}", f"/v1/feedback/queues/{a['queue']}",
             f"/v1/fine_tuning/jobs/{a['job']}/checkpoints", f"/v1/models/{a['model']}"]  # fmt: skip
    return [(client.get(p, headers=ha).status_code, client.get(p, headers=ha).json()) for p in paths]


def test_other_tenants_objects_are_404(tenants):
    client, ha, hb, a = tenants
    before = a_views(client, ha, a)
    checked = 0
    for (method, path), kind in ROUTES.items():
        if kind != OBJECT:
            continue
        names = [p.split(":")[0] for p in path.replace("}", "{").split("{")[1::2]]
        assert len(names) == 1 and names[0] in OBJECTS, (
            f"{path}: say in OBJECTS which of A's objects it names"
        )
        for obj in OBJECTS[names[0]]:
            url = path.replace("{" + path.split("{")[1].split("}")[0] + "}", a[obj])
            r = client.request(method, url, headers=hb, json=BODIES.get((method, path)))
            assert r.status_code == 404, (method, url, r.status_code, r.text)
            others = [a[k] for k in ("file", "job", "model", "queue") if a[k] not in a[obj]]
            assert not [i for i in others if i in r.text], ("the 404 names only what was asked", r.text)
            if method == "GET":  # A itself can read it
                assert client.request(method, url, headers=ha).status_code == 200, (method, url)
            checked += 1
    assert checked >= 12
    assert a_views(client, ha, a) == before  # B's cancel/pause/resume/delete/judge changed nothing


def test_other_tenants_studies_cannot_be_asked_tried_or_told(tenants):
    client, ha, hb, a = tenants
    study_file, name = a["study"].split("/")
    checked = 0
    for (method, path), kind in ROUTES.items():
        if kind != TRIAL:
            continue
        url = path.format(file=study_file, name=name, number=0)
        r = client.request(method, url, headers=hb, json=BODIES.get((method, path)))
        assert r.status_code == 404 and a["key_id"] not in r.text, (method, url, r.status_code, r.text)
        checked += 1
    assert checked == 3
    listed = client.get(f"/v1/studies/{a['study']}", headers=ha).json()
    assert listed["trials"] == [], "B's ask/tell reached A's study"


def test_listings_never_name_other_tenants_objects(tenants):
    client, ha, hb, a = tenants
    a_ids = [a[k] for k in ("file", "job", "model", "checkpoint_model", "queue", "study")]
    for (method, path), kind in ROUTES.items():
        if kind == LISTING:
            seen_by_b = client.request(method, path, headers=hb)
            assert seen_by_b.status_code == 200
            assert not [i for i in a_ids if i in seen_by_b.text], path
            assert client.request(method, path, headers=ha).status_code == 200
    # a cursor naming A's object is as unknown to B as the object itself
    for path, obj in (("/v1/files", "file"), ("/v1/fine_tuning/jobs", "job")):
        assert client.get(path, params={"after": a[obj]}, headers=hb).status_code == 404


def test_key_management_needs_the_admin_scope(tenants):
    client, ha, hb, a = tenants
    for (method, path), kind in ROUTES.items():
        if kind == ADMIN:
            url = path.replace("{key_id}", a["key_id"])
            r = client.request(
                method, url, headers=hb, json={"name": "x", "admin": True} if method == "POST" else None
            )
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required", (
                method,
                url,
                r.text,
            )
            assert a["key_id"] not in r.text
    assert client.get("/v1/files", headers=ha).status_code == 200  # B's DELETE revoked nothing


def test_references_in_bodies_to_other_tenants_objects_are_refused(tenants):
    client, _, hb, a = tenants
    refs = body_refs(a)
    assert set(refs) == {k for k, v in ROUTES.items() if v == BODY_REF}
    for (method, path), bodies in refs.items():
        for body in bodies:
            r = client.request(method, path, headers=hb, json=body)
            assert r.status_code in (400, 404), (path, body, r.status_code, r.text)
    assert client.get("/v1/fine_tuning/jobs", headers=hb).json()["data"] == []
