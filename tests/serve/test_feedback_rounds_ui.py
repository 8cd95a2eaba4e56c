"""The web UI of shared queues in Debian's chromium: two annotators, each in their own session, label
the same queue by keyboard (a tie with `t`); the owner's round page shows the round and their figures."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from reinforge.serve.db import create_key, default_db_url, make_engine
from tests.serve.helpers import CHROMIUM, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


def press_through(page, keys: list[str]) -> None:
    """One key per item (then Enter, unless the key submits itself), waiting for each to be saved."""
    for key in keys:
        before = page.inner_text("#fb-progress")
        page.keyboard.press(key)
        if key != "t":
            page.keyboard.press("Enter")
        page.wait_for_function(f"document.querySelector('#fb-progress').textContent !== {json.dumps(before)}")


def test_two_annotators_and_the_round_page(server, browser):
    engine = make_engine(default_db_url(server.data_dir))  # keys straight into the server's database
    made = {who: create_key(engine, who) for who in ("owner", "ann1", "ann2")}
    ids, keys = {w: i for w, (i, _) in made.items()}, {w: k for w, (_, k) in made.items()}
    http = httpx.Client(base_url=server.url + "/v1", headers={"Authorization": f"Bearer {keys['owner']}"})
    items = [
        {"id": f"r-{i}", "prompt": f"review {i}", "responses": [f"good {i}", f"bad {i}"], "kind": "pairwise"}
        for i in range(3)
    ]
    items.append({"id": "gold-0", "prompt": "review g", "responses": ["awful", "great"], "gold": [1, 0]})
    round_info = {"round": 1, "status": "labelling", "requested": 3}
    q = http.post("/feedback/queues", json={"name": "round 1", "items": items, "annotators_per_item": 2,
                                            "annotators": [ids["ann1"], ids["ann2"]], "round": round_info}).json()  # fmt: skip
    ann1, ann2 = (
        signed_in_page(browser, server.url, keys["ann1"]),
        signed_in_page(browser, server.url, keys["ann2"]),
    )
    for page in (ann1, ann2):
        page.goto(f"{server.url}/#feedback/{q['id']}")
        page.wait_for_selector("#fb-responses .response")
        assert page.inner_text("#fb-progress") == "0 / 4 judged"
        assert "which response is better" in page.inner_text("#fb-kind")  # what the item asks
    press_through(ann1, ["1", "1", "1", "2"])  # right on the gold item
    press_through(ann2, ["1", "t", "2", "1"])  # a tie on review 1; disagrees on review 2; wrong on gold
    for page in (ann1, ann2):
        page.wait_for_selector("#fb-done:not([hidden])")
    http.post(f"/feedback/queues/{q['id']}/round", json={"status": "done", "rm_accuracy": 0.75, "kl": 0.12,
              "samples": [{"prompt": "review 0", "before": "meh", "after": "great film"}]})  # fmt: skip
    owner = signed_in_page(browser, server.url, keys["owner"])
    owner.goto(f"{server.url}/#rounds/{q['id']}")
    owner.wait_for_selector("#round-annotators tbody tr")
    field = lambda name: owner.inner_text(f"#round-fields dd[data-field='{name}']")  # noqa: E731
    assert (field("status"), field("RM accuracy"), field("KL")) == ("done", "0.75", "0.12")
    assert field("fully labelled") == "3 of 3" and field("labels") == "8"
    # pairs: review 0 agree, review 2 disagree, gold disagree (review 1: a tie is no value) -> 1 of 3
    assert field("agreement") == "0.333"
    assert field("outcomes") == "decided 2, tie 1, skipped 0, unlabelled 0"
    rows = {
        r.get_attribute("data-key"): r.inner_text() for r in owner.locator("#round-annotators tbody tr").all()
    }
    assert rows[ids["ann1"]].startswith("ann1\t4") and "1 (1/1, 0 skipped)" in rows[ids["ann1"]]
    assert "0 (0/1, 0 skipped)" in rows[ids["ann2"]]
    assert owner.inner_text("#round-samples tbody") == "review 0\tmeh\tgreat film"
