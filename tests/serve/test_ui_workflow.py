"""The web UI's whole workflow in Debian's chromium via Playwright: upload a data file, write and try an RFT
grader on a row of it, start a job from the form, watch its chart grow while it runs, chat with the
fine-tuned model (and with a base model given tools). ``REINFORGE_SCREENSHOTS=DIR`` saves the README's
screenshots there (``docs/img``); otherwise they go under tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import write_jsonl
from tests.serve.helpers import (
    CHROMIUM,
    api,
    rft_rows,
    sft_rows,
    two_objective_study,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]

VIEWPORT = {"width": 1280, "height": 820}  # the README screenshots' size


def shot(page, tmp_path: Path, name: str) -> None:
    out = Path(os.environ.get("REINFORGE_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"{name}.png"))


def upload(page, server, path: Path) -> None:
    page.goto(f"{server.url}/#files")
    page.set_input_files("#up-file", str(path))
    page.click("#up-send")


def test_upload_then_grader_tried_on_a_row_and_form_errors(server, api_key, page, tmp_path):
    """Fast: no training. Upload (a bad file is refused with its line), the file in the list and in the
    job form, the grader validated and tried on row 2 of the file, a bad grader or method stops the form."""
    good = write_jsonl(tmp_path / "adds.jsonl", rft_rows())
    upload(page, server, good)
    row = page.wait_for_selector("#file-table tbody tr:has-text('adds.jsonl')")
    fid = row.get_attribute("data-id")
    assert fid in [f["id"] for f in api(server, api_key).get("/files").json()["data"]]  # the API agrees
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "1+1"}]}\nnot json\n')
    upload(page, server, bad)
    page.wait_for_function("document.querySelector('#up-error').textContent.includes('bad.jsonl:2: ')")
    assert not page.query_selector("#file-table tbody tr:has-text('bad.jsonl')")

    page.goto(f"{server.url}/#new-job")
    page.wait_for_selector(f"#nj-train option[value='{fid}']", state="attached")
    page.select_option("#nj-train", fid)
    page.click("#nj-validate")
    page.wait_for_function("document.querySelector('#nj-reward').textContent === 'valid'")
    page.fill("#nj-row", "2")  # 23+31 -> 54
    page.fill("#nj-sample", "54")
    page.click("#nj-try")
    page.wait_for_function("document.querySelector('#nj-reward').textContent === '1'")
    assert json.loads(page.inner_text("#nj-result"))["row"] == 2
    page.fill("#nj-sample", "45")
    page.click("#nj-try")
    page.wait_for_function("document.querySelector('#nj-reward').textContent === '0'")
    page.fill("#nj-row", "9")
    page.click("#nj-try")
    page.wait_for_function("document.querySelector('#nj-result').textContent.includes('has 6 rows')")

    jobs_before = len(api(server, api_key).get("/fine_tuning/jobs").json()["data"])
    page.fill("#nj-grader", '{"type": "string_check", "name": "x", "input": "a"}')  # no reference
    page.click("#nj-create")
    page.wait_for_function("document.querySelector('#nj-error').textContent.includes('grader is not valid')")
    page.select_option("#nj-method", "dpo")  # RFT rows are no preference pairs: the API says so
    assert page.is_hidden("#nj-grader-box")
    page.click("#nj-create")
    page.wait_for_function("document.querySelector('#nj-error').textContent.length > 0")
    assert "grader" not in page.inner_text("#nj-error")
    assert len(api(server, api_key).get("/fine_tuning/jobs").json()["data"]) == jobs_before

    # an SFT job from the form: the API gets OpenAI's method object (then it is cancelled: no training here)
    upload(page, server, write_jsonl(tmp_path / "sft.jsonl", sft_rows()))
    sid = page.wait_for_selector("#file-table tbody tr:has-text('sft.jsonl')").get_attribute("data-id")
    page.goto(f"{server.url}/#new-job")
    page.wait_for_selector(f"#nj-train option[value='{sid}']", state="attached")
    page.select_option("#nj-method", "supervised")
    page.select_option("#nj-train", sid)
    page.fill("#nj-hp", '{"n_epochs": 1, "batch_size": 2}')
    page.click("#nj-create")
    page.wait_for_url("**/#jobs/ftjob-*")
    c = api(server, api_key)
    job = c.get(f"/fine_tuning/jobs/{page.url.rsplit('/', 1)[-1]}").json()
    c.post(f"/fine_tuning/jobs/{job['id']}/cancel")
    assert job["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 2}},
    }
    assert job["training_file"] == sid and job["model"] == page.eval_on_selector("#nj-model", "s => s.value")
    assert api_key not in page.content()


def test_study_page_trials_front_and_importance(server, page, tmp_path):
    """Fast: a study in the key's studies folder (as ``reinforge tune --set storage=...`` leaves it)."""
    key_id = page.evaluate("fetch('/ui/session').then((r) => r.json()).then((s) => s.key_id)")
    two_objective_study(server.data_dir / "studies" / key_id / "sweep.db", n=10).storage.close()
    page.goto(f"{server.url}/#studies")
    page.click("#study-list li[data-id='sweep.db/demo']")
    page.wait_for_selector("#study-trials tbody tr")
    assert len(page.query_selector_all("#study-trials tbody tr")) == 10
    assert "params.x" in page.inner_text("#study-trials thead")
    front = page.query_selector_all("#study-trials tbody tr.pareto")
    assert front and len(page.query_selector_all("#study-chart circle.front")) == len(front)
    assert "loss against cost" in page.inner_text("#study-chart-title")
    assert page.query_selector("#study-importance .bar-row[data-param='x']")
    assert page.inner_text("#study-key") == key_id
    assert page.is_hidden("#page-chat") and page.is_hidden("#page-feedback")  # one page at a time
    shot(page, tmp_path, "ui-study")


STEPS = 300  # a step of the tiny model takes ~0.05 s on a quiet CPU: the job runs long enough to be watched


@pytest.mark.slow
def test_upload_job_live_chart_then_chat_with_the_result(server, api_key, page, tmp_path):
    """Slow (a job through the worker): the whole workflow, with the README's screenshots."""
    upload(page, server, write_jsonl(tmp_path / "train-additions.jsonl", rft_rows()))
    fid = page.wait_for_selector("#file-table tbody tr:has-text('train-additions.jsonl')").get_attribute(
        "data-id"
    )
    shot(page, tmp_path, "ui-files")

    page.goto(f"{server.url}/#new-job")
    page.wait_for_selector(f"#nj-train option[value='{fid}']", state="attached")
    page.select_option("#nj-model", "tiny:addition:1m")
    page.select_option("#nj-train", fid)
    page.fill("#nj-hp", '{"batch_size": 2, "compute_multiplier": 0.25}')
    page.fill("#nj-extra", f'{{"steps": {STEPS}, "max_new_tokens": 4, "beta": 0.0}}')
    page.click("#nj-try")  # no sample typed: the model answers row 1, the grader scores it
    page.wait_for_function("document.querySelector('#nj-reward').textContent !== '–'", timeout=300_000)
    assert page.inner_text("#nj-reward") in ("0", "1"), page.inner_text("#nj-result")  # the model loads first
    assert json.loads(page.inner_text("#nj-result"))["sample"] is not None
    shot(page, tmp_path, "ui-new-job")
    page.click("#nj-create")
    page.wait_for_url("**/#jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[-1]

    # live: while the job runs, the chart has points and then more points (the page polls the metrics)
    running = "document.querySelector('#job-status')?.textContent === 'running'"
    points = (
        "Number(document.querySelector('#reward-chart polyline.series-train_mean_reward')?.dataset.points)"
    )
    page.wait_for_function(f"{running} && {points} >= 1", timeout=300_000)
    first = page.evaluate(points)
    page.wait_for_function(f"{running} && {points} > {first}", timeout=300_000)
    shot(page, tmp_path, "ui-job-live")
    page.wait_for_function(
        "document.querySelector('#job-status')?.textContent === 'succeeded'", timeout=300_000
    )
    page.wait_for_selector(f"#reward-chart polyline.series-train_mean_reward[data-points='{STEPS}']")
    ft = api(server, api_key).get(f"/fine_tuning/jobs/{job_id}").json()["fine_tuned_model"]
    assert ft and page.inner_text("#job-fine_tuned_model") == ft

    page.click("#job-chat")  # the job's model, picked in the chat page
    page.wait_for_function(f"document.querySelector('#chat-model').value === {json.dumps(ft)}")
    page.fill("#chat-input", "12+15")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-log li.assistant", timeout=300_000)
    assert page.inner_text("#chat-log li.user") == "12+15"
    shot(page, tmp_path, "ui-chat")

    tool = {"type": "function", "function": {"name": "add", "description": "Add two integers",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}  # fmt: skip
    page.click("#chat-clear")
    page.select_option("#chat-model", "tiny:addition:1m")
    page.fill("#chat-tools", json.dumps([tool]))
    page.fill("#chat-input", "12+15")
    page.press("#chat-input", "Enter")
    page.wait_for_selector(
        "#chat-log li.assistant", timeout=300_000
    )  # a reply or a call: the API took the tools
    assert page.inner_text("#chat-error") == ""
    assert len(page.query_selector_all("#chat-log li")) == 2
