"""Done-when of issue 23, in Debian's chromium: two annotators label the rounds of a real `reinforge rlhf`
on the built-in sentiment task through the web UI (each in their own browser session); the loop trains
the reward model on their labels and finishes the next round, no file moved by hand. On the way the
loop is killed mid-round and restarted, and so is the server: no label is lost or counted twice.
Then the round page shows the round's figures. (Slow: the loop trains for real; minutes on 2 cores.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest
import yaml

from tests.helpers import wait_for
from tests.serve.helpers import CHROMIUM, launch_chromium, signed_in_page, start_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


def start_loop(cfg: str, key: str, log, resume: bool = False) -> subprocess.Popen:
    env = {**os.environ, "RF_LOOP_KEY": key, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "reinforge.cli", "rlhf", cfg] + (["--resume"] if resume else [])
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def label_by_keyboard(page, url: str, qid: str, most: int | None = None) -> int:
    """Label the queue's items the annotator still has, the longer response preferred, by keyboard."""
    page.goto(f"{url}/#feedback/{qid}")
    page.reload()  # a fresh view of the shared queue
    page.wait_for_selector("#fb-responses .response")
    done = 0
    while page.is_hidden("#fb-done") and (most is None or done < most):
        before = page.inner_text("#fb-progress")
        a, b = (page.inner_text(f"#fb-responses .response[data-index='{i}']") for i in (0, 1))
        page.keyboard.press("1" if len(a) >= len(b) else "2")
        page.keyboard.press("Enter")
        page.wait_for_function(f"document.querySelector('#fb-progress').textContent !== {json.dumps(before)}")
        done += 1
    return done


def round_queue(http: httpx.Client, k: int) -> str:
    def find():
        qs = http.get("/feedback/queues").json()["data"]
        return next((q["id"] for q in qs if q["round"] and q["round"]["round"] == k), None)

    return wait_for(find, timeout=900, every=0.5)


def test_two_annotators_label_a_real_loop_in_the_browser(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    data = tmp_path / "data"
    server = start_server(data)
    port = server.url.rsplit(":", 1)[1]
    keys = {who: server.new_key(who) for who in ("loop", "ann1", "ann2")}
    ids = {
        who: httpx.post(f"{server.url}/ui/login", json={"key": k}).json()["key_id"] for who, k in keys.items()
    }
    cfg = tmp_path / "rlhf.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": "tiny:sentiment:1m", "task": "sentiment", "output_dir": str(tmp_path / "run"), "rounds": 2,
        "comparisons_per_round": 6, "max_new_tokens": 24,
        "labelers": {"server": server.url, "key_env": "RF_LOOP_KEY", "annotators": [ids["ann1"], ids["ann2"]],
                     "annotators_per_item": 2, "poll_s": 0.5, "timeout_s": 900, "samples": 2},
        "rm": {"epochs": 2, "batch_size": 4, "learning_rate": 1.0e-3, "max_length": 64, "eval_interval": 0,
               "progress": False},
        "ppo": {"steps": 2, "prompts_per_step": 4, "num_minibatches": 1, "max_new_tokens": 16,
                "validation_examples": 4, "eval_interval": 0, "progress": False, "save_interval": 0},
    }))  # fmt: skip
    log = (tmp_path / "loop.log").open("ab")
    http = httpx.Client(
        base_url=server.url + "/v1", headers={"Authorization": f"Bearer {keys['loop']}"}, timeout=30
    )
    loop = start_loop(str(cfg), keys["loop"], log)
    try:
        with sync_api.sync_playwright() as p:
            browser = launch_chromium(p)
            ann1, ann2 = (signed_in_page(browser, server.url, keys[a]) for a in ("ann1", "ann2"))
            # round 1: ann1 labels everything, ann2 a part; then the loop dies mid-round and comes back...
            q1 = round_queue(http, 1)
            n = label_by_keyboard(ann1, server.url, q1)
            assert label_by_keyboard(ann2, server.url, q1, most=2) == 2
            os.killpg(loop.pid, signal.SIGKILL)
            loop.wait(10)
            loop = start_loop(str(cfg), keys["loop"], log, resume=True)
            # ...and the server restarts under it (the loop waits for it; the browsers' sessions hold)
            server.stop()
            server = start_server(data, port=int(port))
            assert label_by_keyboard(ann2, server.url, q1) == n - 2
            # round 2, labelled after the loop trained the RM and PPO on round 1's labels
            q2 = round_queue(http, 2)
            for page in (ann1, ann2):
                label_by_keyboard(page, server.url, q2)
            assert loop.wait(900) == 0, (tmp_path / "loop.log").read_text()[-3000:]
            # the round page: the loop's figures and both annotators'
            ann1.close()
            owner = signed_in_page(browser, server.url, keys["loop"])
            owner.goto(f"{server.url}/#rounds/{q1}")
            owner.wait_for_selector("#round-annotators tbody tr")
            assert owner.inner_text("#round-fields dd[data-field='status']") == "done"
            assert owner.inner_text("#round-fields dd[data-field='RM accuracy']") != "–"
            assert owner.inner_text("#round-fields dd[data-field='KL']") != "–"
            assert owner.locator("#round-annotators tbody tr").count() == 2
            assert owner.locator("#round-samples tbody tr").count() == 2
            browser.close()
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert [r["round"] for r in summary["rounds"]] == [1, 2]
        for r, qid in zip(summary["rounds"], (q1, q2), strict=True):
            record = json.loads((tmp_path / "run" / f"round-{r['round']}" / "labels.json").read_text())
            stored = http.get(f"/feedback/queues/{qid}/labels").json()["data"]
            # every label given in the browser is stored once and was consumed once, none lost
            assert record["consumed"] == sorted(lb["id"] for lb in stored)
            assert len(stored) == 2 * r["labels/requested"] and r["labels/decided"] == r["labels/requested"]
    finally:
        if loop.poll() is None:
            os.killpg(loop.pid, signal.SIGKILL)
        server.stop()
