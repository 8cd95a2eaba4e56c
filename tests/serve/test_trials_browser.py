"""The scoring page in Debian's chromium via Playwright: a person asks a trial of an agent study, runs its
configuration on two examples, reads the outputs and the trial's cost, scores it, and the study has the
score (as ``reinforge tune tell`` would have told it). Fast: the endpoint is the scripted toy agent."""

from __future__ import annotations

import os

import pytest

from reinforge.tune.study import Study
from reinforge.tune.toyagent import ToyEndpoint
from tests.serve.helpers import CHROMIUM
from tests.serve.study_helpers import agent_study

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


def test_a_person_runs_an_asked_trial_on_examples_and_scores_it(server, page, tmp_path):
    key_id = page.evaluate("fetch('/ui/session').then((r) => r.json()).then((s) => s.key_id)")
    with ToyEndpoint() as toy:
        db = agent_study(server.data_dir / "studies" / key_id, toy.base_url)
        page.goto(f"{server.url}/#studies")
        page.click("#study-list li[data-id='agent.db/agent']")
        page.wait_for_selector("#score-none:not([hidden])")  # nothing asked yet
        page.click("#score-ask")
        page.wait_for_selector("#score-trial option[value='0']", state="attached")
        assert '"system"' in page.inner_text("#score-params")
        page.fill("#score-n", "2")
        page.click("#score-run")
        page.wait_for_function("document.querySelectorAll('#score-outputs .tried').length === 2")
        first = page.inner_text("#score-outputs .tried[data-index='0']")
        assert "user: What is" in first and "output:" in first and "the study's grader:" in first
        assert "a whole trial (24 examples): about" in page.inner_text("#score-estimate")
        tokens = page.input_value("#score-values input[data-objective='tokens']")
        assert float(tokens) > 0  # measured objectives are filled in; the person scores the rest
        page.fill("#score-values input[data-objective='score']", "0.75")
        page.click("#score-tell")
        page.wait_for_function("document.querySelector('#score-result').textContent.includes('complete')")
    trial = Study.load(db, "agent").trials[0]
    assert trial.state == "complete" and trial.values[0] == 0.75 and trial.values[1] == float(tokens)
    assert "complete" in page.inner_text("#study-trials tbody tr[data-number='0']")
    assert page.is_visible("#score-none")  # no asked trial waits any more
