"""``/v1/trials/{file}/{name}/...``: ask a trial, try its configuration on a few examples, tell the
person's score; the study sees it as ``reinforge tune tell`` would have told it. Another key's are 404."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import create_key
from reinforge.tune.study import Study
from reinforge.tune.toyagent import ToyEndpoint
from tests.serve.study_helpers import agent_study


@pytest.fixture(scope="module")
def toy():
    with ToyEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def scoring(tmp_path, toy):
    app = create_app(ServeSettings(data_dir=tmp_path / "data"))
    engine = app.state.service.engine
    (a_id, a_key), (_, b_key) = create_key(engine, "alice"), create_key(engine, "bob")
    db = agent_study(tmp_path / "data" / "studies" / a_id, toy.base_url)
    auth = lambda k: {"Authorization": f"Bearer {k}"}  # noqa: E731
    return TestClient(app), auth(a_key), auth(b_key), db


def test_ask_try_and_tell_a_trial_by_hand(scoring):
    client, ha, _, db = scoring
    asked = client.post("/v1/trials/agent.db/agent/ask", headers=ha).json()
    assert asked["number"] == 0 and asked["state"] == "running" and "system" in asked["params"]
    r = client.post("/v1/trials/agent.db/agent/0/try", json={"examples": 2}, headers=ha)
    assert r.status_code == 200, r.text
    tried = r.json()
    assert len(tried["examples"]) == 2 and tried["params"] == asked["params"]
    for ex in tried["examples"]:  # what a person reads before scoring
        assert ex["input"].startswith("user: What is") and "answer" in ex["expected"] and "output" in ex
    assert tried["estimate"]["examples"] == 24 and tried["estimate"]["tokens"] > 0
    told = client.post(
        "/v1/trials/agent.db/agent/0/tell",
        json={"values": [0.5, tried["metrics"]["tokens"], tried["metrics"]["tool_calls"]]},
        headers=ha,
    ).json()
    assert told["state"] == "complete" and told["best"]["number"] == 0
    trial = Study.load(db, "agent").trials[0]  # the same effect as `reinforge tune tell`
    assert trial.state == "complete" and trial.values[0] == 0.5 and trial.attrs["scored_by"] == "hand"
    again = client.post("/v1/trials/agent.db/agent/0/tell", json={"values": [1, 1, 1]}, headers=ha)
    assert again.status_code == 400 and "already complete" in again.json()["error"]["message"]


def test_bad_requests_name_the_problem(scoring):
    client, ha, _, db = scoring
    client.post("/v1/trials/agent.db/agent/ask", headers=ha)
    r = client.post("/v1/trials/agent.db/agent/0/tell", json={"values": [0.5]}, headers=ha)
    assert r.status_code == 400 and "give one value per objective" in r.json()["error"]["message"]
    assert client.post("/v1/trials/agent.db/agent/7/try", json={}, headers=ha).status_code == 404
    db.with_suffix(".yaml").unlink()
    r = client.post("/v1/trials/agent.db/agent/0/try", json={}, headers=ha)
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_config"


def test_another_key_cannot_ask_try_or_tell(scoring):
    client, ha, hb, _ = scoring
    client.post("/v1/trials/agent.db/agent/ask", headers=ha)
    for path, body in (("ask", None), ("0/try", {}), ("0/tell", {"values": [1, 1, 1]})):
        assert client.post(f"/v1/trials/agent.db/agent/{path}", json=body, headers=hb).status_code == 404
    assert client.post("/v1/trials/agent.db/agent/ask").status_code == 401
