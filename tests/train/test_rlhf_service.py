"""The RLHF loop with people labelling through the service (train/service_labeller.py), at API level:
two annotators label each round's queue; the loop trains on their labels, round after round; a loop
that stops mid-round and a server that restarts lose no label and count none twice."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi.testclient import TestClient

from reinforge.errors import ConfigError
from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import create_key
from reinforge.train.labellers import ComparisonRequest
from reinforge.train.rlhf import RLHFConfig, run_rlhf
from reinforge.train.service_labeller import ServiceLabeller
from tests.helpers import micro_model, prompt_rows, wait_for, write_jsonl


@pytest.fixture
def service(tmp_path):
    """(start a server on the data dir: a fresh app each call, as after a restart; key ids; headers)."""

    def start():
        return TestClient(create_app(ServeSettings(data_dir=tmp_path / "data")))

    client = start()
    keys = {who: create_key(client.app.state.service.engine, who) for who in ("loop", "ann1", "ann2")}
    return start, {w: i for w, (i, _) in keys.items()}, {w: k for w, (_, k) in keys.items()}


def longer_first(item: dict) -> dict:
    """An annotator who prefers the longer response (the first on a tie)."""
    a, b = item["responses"]
    return {"ranking": [0, 1] if len(a) >= len(b) else [1, 0]}


def annotate(client, key: str, choose=longer_first) -> int:
    """One pass of an annotator over every queue shared with them; the labels given."""
    head, given = {"Authorization": f"Bearer {key}"}, 0
    for q in client.get("/v1/feedback/queues", headers=head).json()["data"]:
        while (
            item := client.get(f"/v1/feedback/queues/{q['id']}/next", headers=head).json()["item"]
        ) is not None:
            assert (
                client.post(f"/v1/feedback/items/{item['id']}", json=choose(item), headers=head).status_code
                == 200
            )
            given += 1
    return given


def spec(ids: dict, **extra) -> dict:
    return {"server": "http://testserver", "annotators": [ids["ann1"], ids["ann2"]], "annotators_per_item": 2,
            "poll_s": 0.05, "timeout_s": 120, **extra}  # fmt: skip


def test_two_annotators_label_two_rounds_and_the_loop_trains_on_them(tmp_path, service):
    start, ids, keys = service
    client = start()
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"prompt": "say 1", "chosen": "1 1 1 1", "rejected": "2"},
                                                 {"prompt": "say 2", "chosen": "2 2 2 2", "rejected": "x"}])  # fmt: skip
    cfg = RLHFConfig(
        model=str(micro_model(tmp_path / "m")),
        task=None,
        prompts_file=str(write_jsonl(tmp_path / "prompts.jsonl", prompt_rows(16))),
        output_dir=str(tmp_path / "rlhf"),
        rounds=2,
        comparisons_per_round=8,
        max_new_tokens=6,
        labelers=spec(ids, gold=str(gold), gold_per_round=2, samples=2),
        rm={"steps": 2, "batch_size": 4, "progress": False, "device": "cpu", "eval_interval": 0},
        ppo={"steps": 1, "prompts_per_step": 4, "num_minibatches": 1, "ppo_epochs": 1, "max_new_tokens": 4,
             "progress": False, "device": "cpu", "eval_interval": 1, "validation_examples": 4, "save_interval": 0},
    )  # fmt: skip
    labeller = ServiceLabeller(cfg.labelers, key=keys["loop"], client=client)
    result: dict = {}
    loop = threading.Thread(target=lambda: result.setdefault("summary", run_rlhf(cfg, labeller=labeller)))
    loop.start()
    wait_for(
        lambda: [annotate(client, keys[a]) for a in ("ann1", "ann2")] and not loop.is_alive(), every=0.05
    )
    summary = result["summary"]
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    head = {"Authorization": f"Bearer {keys['loop']}"}
    queues = client.get("/v1/feedback/queues", headers=head).json()["data"]
    assert sorted(q["round"]["round"] for q in queues) == [1, 2]
    for r, q in zip(summary["rounds"], sorted(queues, key=lambda q: q["round"]["round"]), strict=True):
        stored = client.get(f"/v1/feedback/queues/{q['id']}/labels", headers=head).json()["data"]
        record = json.loads((tmp_path / "rlhf" / f"round-{r['round']}" / "labels.json").read_text())
        # every label the annotators gave was consumed once: 2 per item, comparisons and gold alike
        assert record["consumed"] == sorted(lb["id"] for lb in stored)
        assert len(stored) == 2 * (r["labels/requested"] + 2)
        # both annotators chose alike: every comparison decided, full agreement, all gold right
        assert r["labels/decided"] == r["labels/requested"] and r["labels/agreement"] == 1.0
        assert r["labels/gold_accuracy"] == 1.0 and r["labels/annotators"] == 2
        rnd = q["round"]
        assert rnd["status"] == "done" and rnd["labelled"] == r["labels/decided"]
        assert rnd["kl"] == r["kl"] is not None and rnd["rm_accuracy"] == r["rm_val_accuracy"] is not None
        assert len(rnd["samples"]) == 2 and {"prompt", "before", "after"} <= set(rnd["samples"][0])
    assert summary["rounds"][1]["labels_total"] > summary["rounds"][0]["labels_total"]


def test_a_restarted_loop_and_server_lose_no_label(tmp_path, service):
    start, ids, keys = service
    reqs = [
        ComparisonRequest(f"r1-{i}", {}, [{"role": "user", "content": f"q{i}"}], ["aa", "b"])
        for i in range(4)
    ]
    first = ServiceLabeller(spec(ids), key=keys["loop"], client=start())
    first.start(tmp_path / "run")
    qid = first.open_queue(reqs, 1)  # the loop dies here, its queue posted
    client = start()
    first_pass = {"ann1": annotate(client, keys["ann1"]), "ann2": 0}
    del client  # the server restarts
    client = start()
    again = ServiceLabeller(spec(ids), key=keys["loop"], client=client)  # the loop restarts
    again.start(tmp_path / "run")
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("prefs", again.label(reqs, 1)))
    t.start()
    first_pass["ann2"] = annotate(client, keys["ann2"])
    t.join(60)
    assert first_pass == {"ann1": 4, "ann2": 4}
    head = {"Authorization": f"Bearer {keys['loop']}"}
    assert [q["id"] for q in client.get("/v1/feedback/queues", headers=head).json()["data"]] == [
        qid
    ]  # one queue
    stored = client.get(f"/v1/feedback/queues/{qid}/labels", headers=head).json()["data"]
    record = json.loads((tmp_path / "run" / "round-1" / "labels.json").read_text())
    assert record["consumed"] == sorted(lb["id"] for lb in stored) and len(stored) == 8
    assert [p.responses for p in result["prefs"]] == [["aa", "b"]] * 4
    # a third start after the round closed reads its record, asking the server nothing
    third = ServiceLabeller(spec(ids), key=keys["loop"], client=object())
    third.start(tmp_path / "run")
    assert [p.source for p in third.label(reqs, 1)] == [r.id for r in reqs]


def test_labelers_section_is_checked_when_the_config_loads(monkeypatch):
    with pytest.raises(ValueError, match="labelers.annotator_per_item: unknown key"):
        RLHFConfig(labelers={"server": "http://h", "annotator_per_item": 2})
    with pytest.raises(ValueError, match="labelers.server: the URL"):
        RLHFConfig(labelers={"annotators_per_item": 2})
    monkeypatch.delenv("RF_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="labelers.key_env: the environment variable RF_TEST_KEY"):
        ServiceLabeller({"server": "http://h", "key_env": "RF_TEST_KEY"})
