"""The manual mode's try-out: a trial's configuration run on a few examples (outputs, grades, the
trajectory) and the whole trial's cost, printed by ``tune ask`` from a dry run on one example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.tune.study import Study
from reinforge.tune.tryout import try_params
from tests.tune.helpers import GOOD_AGENT as GOOD
from tests.tune.helpers import toy_objective

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/tune/agent.yaml"


def test_a_configuration_tried_on_a_few_examples_shows_what_a_person_scores(toy, tmp_path):
    obj = toy_objective(EXAMPLE, toy, tmp_path)
    tried = try_params(obj, GOOD, 3)  # dotted names, as a trial holds them
    assert len(tried["examples"]) == 3
    for ex in tried["examples"]:
        assert ex["input"].startswith("user: What is") and ex["output"] == ex["expected"]["answer"]
        assert ex["grade"] == 1.0 and ("calculator(" in ex["trajectory"] or "lookup(" in ex["trajectory"])
    est = tried["estimate"]
    assert est["examples"] == obj.n_examples == 24
    assert est["tokens"] == pytest.approx(tried["metrics"]["tokens"] * 24)
    assert est["usd"] > 0


def ask(toy, tmp_path, *sets):
    args = ["tune", "ask", str(EXAMPLE), "--set", f"storage={tmp_path / 's.db'}"]
    for s in (f"objective.llm.base_url={toy.base_url}", *sets):
        args += ["--set", s]
    return CliRunner().invoke(app, args)


def test_ask_prints_the_trials_cost_from_a_dry_run_on_one_example(toy, tmp_path):
    r = ask(toy, tmp_path)
    assert r.exit_code == 0, r.output
    m = re.search(
        r"this trial on its 24 examples, from a dry run on 1: about (\d+) tokens, \$([\d.]+)", r.output
    )
    assert m and int(m[1]) > 0 and float(m[2]) > 0, r.output
    assert Study.load(tmp_path / "s.db", "agent").trials[0].state == "running"  # asked, not told
    assert "this trial" not in ask(toy, tmp_path, "estimate_probes=0").output  # the estimate turned off


def test_ask_with_an_unreachable_endpoint_is_one_line_and_asks_nothing(tmp_path):
    r = CliRunner().invoke(
        app,
        ["tune", "ask", str(EXAMPLE), "--set", f"storage={tmp_path / 's.db'}",
         "--set", "objective.llm.base_url=http://127.0.0.1:9/v1", "--set", "objective.llm.max_retries=0"],
    )  # fmt: skip
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "s.db").exists()
