"""Shared feedback queues (serve/annotation.py): several annotators, each handed only what they have not
labelled, labels that carry their key, quality figures, idempotent creation and round status."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import create_key


@pytest.fixture
def service(tmp_path):
    def start():
        return TestClient(create_app(ServeSettings(data_dir=tmp_path / "data")))

    client = start()
    keys = {
        name: create_key(client.app.state.service.engine, name) for name in ("owner", "ann1", "ann2", "eve")
    }
    heads = {name: {"Authorization": f"Bearer {key}"} for name, (_id, key) in keys.items()}
    return start, client, {name: kid for name, (kid, _k) in keys.items()}, heads


ITEMS = [
    {"id": "r1-0", "prompt": "q0", "responses": ["a0", "b0"]},
    {"id": "r1-1", "prompt": "q1", "responses": ["a1", "b1"]},
    {"id": "gold-0", "prompt": "g", "responses": ["good", "bad"], "gold": [0, 1]},
]


def shared_queue(client, ids, heads, k=2, ref="run-x/round-1"):
    body = {"name": "round 1", "ref": ref, "items": ITEMS, "annotators_per_item": k,
            "annotators": [ids["ann1"], ids["ann2"]], "round": {"round": 1, "status": "labelling"}}  # fmt: skip
    r = client.post("/v1/feedback/queues", json=body, headers=heads["owner"])
    assert r.status_code == 200, r.text
    return r.json()


def label_all(client, qid, head, ranking_of):
    """Label every item handed out, through /next, until none is left; the labelled prompts in order."""
    seen = []
    while (item := client.get(f"/v1/feedback/queues/{qid}/next", headers=head).json()["item"]) is not None:
        body = ranking_of(item["prompt"])
        assert client.post(f"/v1/feedback/items/{item['id']}", json=body, headers=head).status_code == 200
        seen.append(item["prompt"])
    return seen


def test_each_annotator_labels_each_item_once_and_labels_carry_their_key(service):
    start, client, ids, heads = service
    q = shared_queue(client, ids, heads)
    assert shared_queue(client, ids, heads)["id"] == q["id"]  # the same ref again: the same queue
    typo = {"items": ITEMS, "annotators_per_item": 2, "annotators": ["key-nobody"]}
    r = client.post("/v1/feedback/queues", json=typo, headers=heads["owner"])
    assert r.status_code == 400 and "'key-nobody' is no valid key id" in r.json()["error"]["message"]
    # ann1 prefers the first response everywhere; ann2 differs on q1 and skips q0
    assert label_all(client, q["id"], heads["ann1"], lambda p: {"ranking": [0, 1]}) == ["q0", "q1", "g"]
    ann2 = {"q0": {"skip": True}, "q1": {"ranking": [1, 0]}, "g": {"thumbs": {"0": -1, "1": 1}}}
    assert label_all(client, q["id"], heads["ann2"], ann2.__getitem__) == ["q0", "q1", "g"]
    # ann1 judges q1 again (the UI's "previous"): their label is replaced, not added
    first = client.get(f"/v1/feedback/queues/{q['id']}", headers=heads["ann1"]).json()
    assert first["judged"] == first["total"] == 3
    client.post(
        f"/v1/feedback/items/{first['items'][1]['id']}", json={"ranking": [0, 1]}, headers=heads["ann1"]
    )
    labels = client.get(f"/v1/feedback/queues/{q['id']}/labels", headers=heads["owner"]).json()["data"]
    assert len(labels) == 6 and len({lb["id"] for lb in labels}) == 6
    assert sorted((lb["item_ref"], lb["annotator"]) for lb in labels) == sorted(
        (ref, ids[who]) for ref in ("r1-0", "r1-1", "gold-0") for who in ("ann1", "ann2")
    )
    by = {(lb["item_ref"], lb["annotator"]): lb["value"] for lb in labels}
    assert by[("r1-0", ids["ann2"])] is None and by[("gold-0", ids["ann2"])] == [
        1,
        0,
    ]  # skip; thumbs as a pair
    # the quality page's figures: q0 agreement is unpairable (a skip), q1 and gold disagree -> 0 of 2 pairs
    qual = client.get(f"/v1/feedback/queues/{q['id']}/quality", headers=heads["owner"]).json()
    assert qual["labels"] == 6 and qual["items"] == 2 and qual["complete"] == 2
    assert qual["agreement"] == 0.0
    assert qual["outcomes"] == {
        "decided": 1,
        "tie": 1,
        "skipped": 0,
        "unlabelled": 0,
    }  # q0: ann1's vote; q1 split
    assert qual["annotators"][ids["ann1"]]["gold"]["accuracy"] == 1.0
    assert qual["annotators"][ids["ann2"]]["gold"]["accuracy"] == 0.0
    assert qual["annotators"][ids["ann2"]]["name"] == "ann2"
    # the export: one preference per decided item (q1's tie and the gold item are left out)
    export = client.get(f"/v1/feedback/queues/{q['id']}/export", headers=heads["owner"]).text
    assert export == '{"prompt": "q0", "chosen": "a0", "rejected": "b0"}\n'
    # annotators may label but not read the labels or the figures; others see nothing
    assert client.get(f"/v1/feedback/queues/{q['id']}/labels", headers=heads["ann1"]).status_code == 404
    assert client.get(f"/v1/feedback/queues/{q['id']}/next", headers=heads["eve"]).status_code == 404
    assert q["id"] not in client.get("/v1/feedback/queues", headers=heads["eve"]).text
    assert q["id"] in client.get("/v1/feedback/queues", headers=heads["ann2"]).text
    # the round status merges what the loop reports; a restarted server has every label
    r = client.post(
        f"/v1/feedback/queues/{q['id']}/round", json={"status": "done", "kl": 0.5}, headers=heads["owner"]
    )
    assert r.json()["round"] == 1 and r.json()["status"] == "done"
    again = start()
    assert len(again.get(f"/v1/feedback/queues/{q['id']}/labels", headers=heads["owner"]).json()["data"]) == 6


def test_an_item_with_its_k_labels_goes_to_no_one_else(service):
    _start, client, ids, heads = service
    q = shared_queue(client, ids, heads, k=1, ref="k1")
    first = label_all(client, q["id"], heads["ann1"], lambda p: {"ranking": [0, 1]})
    assert first == ["q0", "q1", "g"]
    assert client.get(f"/v1/feedback/queues/{q['id']}/next", headers=heads["ann2"]).json()["item"] is None
    assert client.get(f"/v1/feedback/queues/{q['id']}", headers=heads["ann2"]).json()["total"] == 0


def test_annotators_without_a_count_still_label_for_themselves(service):
    _start, client, ids, heads = service
    body = {"items": ITEMS[:1], "annotators": [ids["ann1"]]}  # no annotators_per_item: one label per item
    q = client.post("/v1/feedback/queues", json=body, headers=heads["owner"]).json()
    item = client.get(f"/v1/feedback/queues/{q['id']}/next", headers=heads["ann1"]).json()["item"]
    client.post(f"/v1/feedback/items/{item['id']}", json={"ranking": [1, 0]}, headers=heads["ann1"])
    # ann1's label is theirs, not written over the owner's item
    labels = client.get(f"/v1/feedback/queues/{q['id']}/labels", headers=heads["owner"]).json()["data"]
    assert [(lb["annotator"], lb["value"]) for lb in labels] == [(ids["ann1"], [1, 0])]
    assert client.get(f"/v1/feedback/queues/{q['id']}", headers=heads["owner"]).json()["judged"] == 0


def test_an_item_asks_for_pairwise_or_thumbs(service):
    _start, client, ids, heads = service
    items = [{"prompt": "p", "responses": ["a", "b"], "kind": "thumbs"}, {"prompt": "q", "responses": ["c", "d"], "kind": "pairwise"}]  # fmt: skip
    q = client.post(
        "/v1/feedback/queues", json={"items": items, "annotators_per_item": 1}, headers=heads["owner"]
    )
    thumbs, pair = q_items = client.get(
        f"/v1/feedback/queues/{q.json()['id']}", headers=heads["owner"]
    ).json()["items"]
    assert [it["kind"] for it in q_items] == ["thumbs", "pairwise"]
    post = lambda it, body: client.post(f"/v1/feedback/items/{it['id']}", json=body, headers=heads["owner"])  # noqa: E731
    assert post(thumbs, {"ranking": [0, 1]}).json()["error"]["param"] == "thumbs"  # asked for thumbs
    assert post(pair, {"thumbs": {"0": 1, "1": -1}}).json()["error"]["param"] == "ranking"
    assert post(thumbs, {"thumbs": {"0": -1, "1": 1}}).status_code == 200
    assert post(pair, {"skip": True}).status_code == 200  # a tie is always an answer
    bad = [{"prompt": "p", "responses": ["a", "b", "c"], "kind": "pairwise"}]
    r = client.post("/v1/feedback/queues", json={"items": bad}, headers=heads["owner"])
    assert r.status_code == 400 and r.json()["error"]["param"] == "items[0].kind"
