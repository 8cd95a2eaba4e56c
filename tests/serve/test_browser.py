"""The web UI in Debian's chromium via Playwright: logging in (the key never reaches the URL, the page's
storage or its scripts), a keyboard feedback session, a finished job's chart, the grader playground."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from tests.helpers import wait_for
from tests.serve.helpers import STRING_CHECK, rft_rows

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        pg = browser.new_page()
        yield pg
        browser.close()


@pytest.fixture(scope="module")
def logged_in(server, api_key, page):
    """The page, signed in through the login form (the other tests share this session)."""
    page.goto(f"{server.url}/")
    page.wait_for_selector("#login-form:not([hidden])")
    page.fill("#key-input", api_key)
    page.click("#login")
    page.wait_for_selector("#session:not([hidden])")
    return page


@pytest.fixture(scope="module")
def http(server, api_key):
    return httpx.Client(
        base_url=server.url + "/v1", headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    )


def test_feedback_session_by_keyboard(server, http, logged_in):
    page = logged_in
    items = [
        {"prompt": "12+15", "responses": ["27", "28"]},
        {"prompt": "40+18", "responses": ["57", "58"]},
        {"prompt": "Name a colour", "responses": ["red", "blue", "green"]},
        {"prompt": "23+31", "responses": ["54", "45"]},
    ]
    queue = http.post("/feedback/queues", json={"name": "browser", "items": items}).json()
    page.goto(f"{server.url}/#feedback/{queue['id']}")
    page.wait_for_selector("#fb-responses .response")
    assert page.inner_text("#fb-prompt") == "12+15"
    page.keyboard.press("1")  # two responses: one key ranks both
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#fb-prompt').textContent === '40+18'")
    page.keyboard.press("1")
    page.keyboard.press("Backspace")  # changed my mind
    page.keyboard.press("2")
    page.keyboard.press("c")
    page.keyboard.type("57 is wrong")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#fb-prompt').textContent === 'Name a colour'")
    for key in ("3", "1"):  # green > red > blue (the last one follows)
        page.keyboard.press(key)
    assert "3 > 1 > 2" in page.inner_text("#fb-ranking")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#fb-prompt').textContent === '23+31'")
    page.keyboard.press("+")  # thumbs only: up on the highlighted first response...
    page.keyboard.press("ArrowRight")
    page.keyboard.press("-")  # ...down on the second
    page.keyboard.press("Enter")
    page.wait_for_selector("#fb-done:not([hidden])")
    assert page.inner_text("#fb-progress") == "4 / 4 judged"
    page.keyboard.press("e")
    page.wait_for_selector("#export-output:not([hidden])")
    rows = [json.loads(line) for line in page.inner_text("#export-output").strip().splitlines()]
    assert rows == [
        {"prompt": "12+15", "chosen": "27", "rejected": "28"},
        {"prompt": "40+18", "chosen": "58", "rejected": "57"},
        {"prompt": "Name a colour", "responses": ["red", "blue", "green"], "ranking": [2, 0, 1]},
        {"prompt": "23+31", "chosen": "54", "rejected": "45"},
    ]
    stored = http.get(f"/feedback/queues/{queue['id']}").json()["items"]
    assert stored[1]["comment"] == "57 is wrong"
    assert http.get(f"/feedback/queues/{queue['id']}/export").text.count("\n") == 4


def test_dashboard_shows_reward_chart_of_finished_job(server, http, logged_in, tmp_path):
    page = logged_in
    body = "".join(json.dumps(r) + "\n" for r in rft_rows()).encode()
    fid = http.post("/files", files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"}).json()["id"]
    job = http.post(
        "/fine_tuning/jobs",
        json={
            "model": "tiny:addition:1m",
            "training_file": fid,
            "validation_file": fid,
            "method": {
                "type": "reinforcement",
                "reinforcement": {
                    "grader": STRING_CHECK,
                    "hyperparameters": {"batch_size": 2, "compute_multiplier": 0.25},
                },
                "reinforge": {"steps": 3, "beta": 0.0, "max_new_tokens": 4},
            },
        },
    ).json()
    wait_for(lambda: http.get(f"/fine_tuning/jobs/{job['id']}").json()["status"] == "succeeded", timeout=300)
    page.goto(f"{server.url}/#jobs/{job['id']}")
    page.wait_for_selector("#reward-chart polyline.series-train_mean_reward")
    assert page.get_attribute("#reward-chart polyline.series-train_mean_reward", "data-points") == "3"
    assert page.get_attribute("#reward-chart polyline.series-full_valid_mean_reward", "data-points") == "2"
    assert page.inner_text("#job-status") == "succeeded"
    assert "successfully completed" in page.inner_text("#job-events")
    assert "ckpt-step-3" in page.inner_text("#job-checkpoints")
    page.wait_for_selector(f"#job-table tr[data-id='{job['id']}']")


def test_grader_playground(server, logged_in):
    page = logged_in
    page.goto(f"{server.url}/#graders")
    page.fill("#gr-sample", "58")
    page.fill("#gr-item", '{"answer": "58"}')
    page.click("#gr-run")
    page.wait_for_function("document.querySelector('#gr-reward').textContent === '1'")
    assert "string_check" in page.inner_text("#gr-result")
    page.fill("#gr-spec", '{"type": "string_check", "name": "x", "input": "a"}')
    page.click("#gr-validate")
    page.wait_for_function("document.querySelector('#gr-reward').textContent === 'error'")


def test_login_keeps_the_key_out_of_reach_and_logout_ends_it(server, api_key, http, logged_in):
    """Runs last: it logs the shared page out."""
    page = logged_in
    http.post("/feedback/queues", json={"name": "mine", "items": [{"prompt": "p", "responses": ["a", "b"]}]})
    page.goto(f"{server.url}/#feedback")
    page.wait_for_selector("#queue-list li:has-text('mine')")  # the page reads the API on the cookie alone
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "reinforge_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["value"] != api_key
    assert "reinforge_session" not in page.evaluate("document.cookie")  # scripts cannot read it
    stored = page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert api_key not in stored and stored == "[[],[]]"
    assert api_key not in page.url and api_key not in page.content()
    # a state change from the page carries the CSRF token: a queue created through the UI's own form
    page.click("#new-queue summary")
    page.fill("#nq-name", "from-the-page")
    page.fill("#nq-items", '{"prompt": "2+2", "responses": ["4", "5"]}')
    page.click("#nq-create")
    page.wait_for_selector("#fb-session:not([hidden])")
    assert "from-the-page" in [q["name"] for q in http.get("/feedback/queues").json()["data"]]
    page.click("#logout")
    page.wait_for_selector("#login-form:not([hidden])")
    assert not [c for c in page.context.cookies() if c["name"] == "reinforge_session"]
    status = page.evaluate("fetch('/v1/feedback/queues').then((r) => r.status)")
    assert status == 401
    replayed = httpx.get(f"{server.url}/v1/models", cookies={"reinforge_session": session["value"]})
    assert replayed.status_code == 401  # the old cookie is worth nothing now
