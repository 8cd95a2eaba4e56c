"""`reinforge demo tune-agent`: the quick form runs every stage (serve on loopback, the study, the held-out
verdict) to the summary and plot; the questions, the default configuration and the user errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reinforge import demo_agent
from reinforge.cli import app
from reinforge.demo_tune_agent import DEFAULT, DISTRACTORS, question_rows, run_demo_tune_agent, space
from reinforge.errors import ReinforgeError
from reinforge.tasks.calculator import NAME, split_of

SUMMARY_KEYS = (
    "default_accuracy",
    "default_reward",
    "tuned_accuracy",
    "default_tokens_per_example",
    "tuned_tokens_per_example",
    "default_tool_calls_per_example",
    "tuned_tool_calls_per_example",
    "best_params",
    "trials",
    "seconds",
)


@pytest.fixture(scope="module")
def tiny_tool_model(tmp_path_factory):
    """An untrained 1m model with the demo agent's tokenizer (the Hermes tags as tokens), saved as
    ``serve`` loads it: it answers nonsense, which is all the plumbing needs."""
    from reinforge.models.tiny import build_model, build_tokenizer, save_tiny

    tok = build_tokenizer(tool_tokens=True)
    return save_tiny(build_model("1m", 0, len(tok)), tok, tmp_path_factory.mktemp("m") / "tool-model")


def questions(path) -> list[str]:
    return [json.loads(line)["messages"][0]["content"] for line in path.read_text().splitlines()]


def test_quick_demo_serves_the_model_runs_the_study_and_judges_on_held_out_questions(
    tmp_path, tiny_tool_model
):
    out = tmp_path / "run"
    summary = run_demo_tune_agent(out, tiny_tool_model, quick=True)
    assert all(k in summary for k in SUMMARY_KEYS), sorted(summary)
    assert summary["trials"] == 3 and summary["heldout_examples"] == 4
    assert json.loads((out / "summary.json").read_text()) == summary
    search, heldout = questions(out / "search.jsonl"), questions(out / "heldout.jsonl")
    assert len(heldout) == 4 and not set(search) & set(heldout)  # the verdict is on questions never searched
    assert (out / "pareto.png").stat().st_size > 10_000
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert [t["state"] for t in trials] == ["complete"] * 3  # every trial reached the served model
    assert all(t["metrics"]["tokens"] > 0 for t in trials)  # the service's counts came back


def test_search_and_held_out_questions_are_disjoint_and_never_from_the_training_split():
    search, heldout = question_rows(24, 64, seed=0)
    expressions = [r["messages"][0]["content"] for r in search + heldout]
    assert (len(search), len(heldout)) == (24, 64)
    assert len(set(expressions)) == 88
    assert {split_of(e) for e in expressions} == {"validation"}


def test_the_default_is_the_out_of_the_box_agent_and_lies_in_the_space():
    assert space().validate(DEFAULT) == DEFAULT
    # every tool offered, and one turn: a call's result is never read back, the flaw tuning should find
    assert DEFAULT["tools"] == [NAME, *DISTRACTORS] and DEFAULT["max_iterations"] == 1
    assert DEFAULT["temperature"] == 1.0


def test_without_a_tool_model_the_demo_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.delattr(demo_agent, "tool_model", raising=False)  # as before issue 17's model lands
    with pytest.raises(ReinforgeError, match="--model-dir DIR"):
        run_demo_tune_agent(tmp_path / "run", None, quick=True)


def test_a_wrong_model_dir_is_one_line_exit_2_and_nothing_written(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["demo", "tune-agent", "--model-dir", str(tmp_path / "nope"), "--output-dir", str(out)]
    )
    text = res.stderr.strip()
    assert res.exit_code == 2 and text.startswith("error: ") and "\n" not in text, res.output
    assert "--model-dir" in text and "config.json" in text
    assert not out.exists()


def test_a_model_the_service_cannot_load_is_one_line_before_the_study(tmp_path, tiny_tool_model):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_tool_model / "config.json").read_text())  # no weights
    res = CliRunner().invoke(
        app,
        ["demo", "tune-agent", "--quick", "--model-dir", str(broken), "--output-dir", str(tmp_path / "run")],
    )
    text = res.stderr.strip().splitlines()[-1]
    assert res.exit_code == 2 and text.startswith("error: demo tune-agent:"), res.output
    assert "cannot load" in text and str(broken) in text and "Traceback" not in res.output
    assert not (tmp_path / "run" / "study.db").exists()  # no trial was run
