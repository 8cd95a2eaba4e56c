"""``agent`` studies: the tool-calling loop, its knobs, its metrics and its errors, through the client
against the scripted tool-using endpoint (``reinforge.tune.toyagent``) on loopback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.errors import ConfigError
from reinforge.tune.space import nest
from tests.tune.helpers import GOOD_AGENT as GOOD
from tests.tune.helpers import run_example, toy_objective

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/tune/agent.yaml"
DEFAULT = {"system": "You are a helpful assistant.", "tools": ["calculator", "lookup", "clock", "weather"]}


def objective(toy, tmp_path, **overrides):
    return toy_objective(EXAMPLE, toy, tmp_path, **overrides)


def test_the_tuned_knobs_change_what_the_agent_does_and_costs(toy, tmp_path):
    obj = objective(toy, tmp_path)
    default, good = obj(nest(DEFAULT)), obj(nest(GOOD))
    assert default["score"] <= 0.2 < 0.9 <= good["score"]  # descriptions and the prompt make it use tools
    assert good["tool_calls"] == pytest.approx(4 / 3)  # 1 + 1 + 2 calls over the three kinds of question
    assert default["tool_calls"] == 0 and good["turns"] > default["turns"]
    assert (
        0 < good["tokens"] and good["usd"] > 0 and 0 < good["model_calls"] <= good["turns"] * 24
    )  # less: repeated questions come from the cache
    fewer = obj(nest({**GOOD, "tools": ["calculator"], "tool_descriptions.lookup": None}))
    assert fewer["score"] < good["score"] and fewer["tokens"] < good["tokens"]  # one schema less to read


def test_max_iterations_cuts_two_step_questions(toy, tmp_path):
    obj = objective(toy, tmp_path)
    one = obj(nest({**GOOD, "max_iterations": 2}))
    assert one["score"] < obj(nest(GOOD))["score"] and one["turns"] <= 2


def test_past_history_tokens_the_history_is_summarised_and_the_work_goes_on(toy, tmp_path):
    obj = objective(toy, tmp_path)
    short = obj(nest({**GOOD, "history_tokens": 60}))
    assert short["summaries"] > 0
    assert short["score"] == obj(nest(GOOD))["score"]  # the summary kept the tool results


def test_the_grader_reads_the_final_answer_and_the_trajectory(toy, tmp_path):
    pipe = objective(toy, tmp_path).pipeline
    row = {"messages": [{"role": "user", "content": "What is the population of Japan in millions, times 3?"}]}
    out = pipe.episode(nest(GOOD), row)
    assert out["output_text"] == "375"
    assert [c["function"]["name"] for c in out["output_tools"]] == ["lookup", "calculator"]
    traj = out["trajectory"]
    assert traj["status"] == "done" and traj["tool_calls"] == 2 and traj["tool_errors"] == 0
    assert [m["role"] for m in traj["messages"]] == ["assistant", "tool", "assistant", "tool", "assistant"]


def test_the_agent_example_runs_as_written(toy, tmp_path):
    out = tmp_path / "out"
    trials = run_example(EXAMPLE, out, f"objective.llm.base_url={toy.base_url}", "n_trials=12")
    assert len(trials) == 12 and all(t["state"] == "complete" for t in trials)
    assert (out / "plots/pareto.png").exists()


@pytest.mark.parametrize(
    "space,says",
    [
        (
            {"tools": {"type": "subset", "options": ["calculator", "web"]}},
            "space.tools: option 'web' is not a tool",
        ),
        (
            {"tool_descriptions.web": {"type": "text", "variants": ["x"]}},
            "space.tool_descriptions.web: 'web' is not",
        ),
    ],
)
def test_a_tool_name_not_defined_names_the_key_and_the_fix(tmp_path, space, says):
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["space"] = space
    cfg["objective"]["llm"]["base_url"] = "http://127.0.0.1:9/v1"  # never reached: the check comes first
    cfg["objective"]["data"] = str(EXAMPLE.parent / "agent/rows.jsonl")
    cfg["objective"]["tools"] = str(EXAMPLE.parent / "agent/tools.yaml")
    cfg["objective"]["grader"] = str(EXAMPLE.parent / "agent/grader.json")
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["tune", str(path), "--set", f"output_dir={tmp_path / 'out'}"])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert (
        "\n" not in line and says in line and "objective.tools (calculator, lookup, clock, weather)" in line
    )


def test_an_http_tool_without_a_schema_is_named(tmp_path, toy):
    with pytest.raises(ConfigError, match="tool 'search' has no schema; give it 'schema'"):
        objective(
            toy, tmp_path, **{"objective.tools": '[{"name": "search", "server_url": "http://127.0.0.1:9/s"}]'}
        )


def test_failures_carry_the_trajectory_and_the_graders_notes_for_the_mutator(toy, tmp_path):
    # issue 18: the LLM mutator reflects on failing trajectories and on the grader's notes
    from reinforge.tune.evolution import LLMMutator
    from tests.tune.test_samplers import FakeClient

    half = {**GOOD, "system": "Answer briefly."}  # stops after looking the population up
    failures = objective(toy, tmp_path)(nest(half))["failures"]
    two_step = [f for f in failures if "times" in f["input"]]
    assert two_step and "lookup(" in two_step[0]["trajectory"] and "tool: " in two_step[0]["trajectory"]
    assert two_step[0]["grader_notes"]["answer"] == 0.0 and two_step[0]["grader_notes"]["clean"] == 1.0
    client = FakeClient("Use your tools, step by step.")
    LLMMutator("m", client=client).mutate(half["system"], failures, random.Random(0))
    assert "lookup(" in client.prompts[0] and "grader_notes" in client.prompts[0]
