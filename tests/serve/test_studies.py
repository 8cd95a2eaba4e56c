"""``/v1/studies``: a key sees the tune studies in its own folder, read-only; another key's are 404."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import create_key
from tests.serve.helpers import two_objective_study


@pytest.fixture
def studies_app(tmp_path):
    app = create_app(ServeSettings(data_dir=tmp_path / "data"))
    engine = app.state.service.engine
    (a_id, a_key), (_, b_key) = create_key(engine, "alice"), create_key(engine, "bob")
    study = two_objective_study(tmp_path / "data" / "studies" / a_id / "sweep.db")
    study.storage.close()
    (tmp_path / "data" / "studies" / a_id / "notes.db").write_text("not a database")
    auth = lambda k: {"Authorization": f"Bearer {k}"}  # noqa: E731
    return TestClient(app), auth(a_key), auth(b_key), tmp_path / "data" / "studies" / a_id / "sweep.db"


def test_owner_reads_trials_front_and_importance(studies_app):
    client, ha, _, path = studies_app
    listed = client.get("/v1/studies", headers=ha).json()["data"]
    assert [s["id"] for s in listed] == ["sweep.db/demo"]  # notes.db is no study: not listed
    before = path.read_bytes()
    s = client.get("/v1/studies/sweep.db/demo", headers=ha).json()
    assert s["objective_names"] == ["loss", "cost"] and s["params"] == ["x", "big"]
    assert len(s["trials"]) == 8 and {"number", "loss", "cost", "params.x"} <= set(s["trials"][0])
    pts = {t["number"]: (t["loss"], t["cost"]) for t in s["trials"]}
    dominated = {n for n, p in pts.items() for q in pts.values() if q != p and q[0] <= p[0] and q[1] <= p[1]}
    assert s["pareto"] and set(s["pareto"]) == set(pts) - dominated
    assert all(t["params.x"] <= 1 for t in s["trials"] if t["number"] in s["pareto"])  # beyond 1 both worsen
    assert set(s["importance"]) == {"x", "big"} and s["importance"]["x"] > s["importance"]["big"]
    assert path.read_bytes() == before  # read-only


@pytest.mark.parametrize(
    "study_id",
    [
        "sweep.db/other",  # no such study in the file
        "missing.db/demo",  # no such file
        "notes.db/demo",  # not a study file
        "../sweep.db/demo",  # no way out of the owner's folder
        "..%2F..%2Fdb.sqlite/demo",
    ],
)
def test_unknown_or_outside_ids_are_404(studies_app, study_id):
    client, ha, _, _ = studies_app
    r = client.get(f"/v1/studies/{study_id}", headers=ha)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_another_key_sees_nothing(studies_app):
    client, _, hb, _ = studies_app
    assert client.get("/v1/studies", headers=hb).json()["data"] == []
    assert client.get("/v1/studies/sweep.db/demo", headers=hb).status_code == 404
    assert client.get("/v1/studies").status_code == 401
