"""Sub-agents in ``agent`` studies: an orchestrator delegating to named agents, the architecture a
Choice, the agents' knobs under ``when``, the whole trajectory graded; against the scripted endpoint
(``reinforge.tune.toyagent``) on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.tune.space import nest
from tests.tune.helpers import run_example, toy_objective

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/tune/agent_team.yaml"
DESCRIBED = {
    "tool_descriptions.calculator": "Exact arithmetic: multiply, add, subtract.",
    "tool_descriptions.lookup": "Facts about a country: its capital and population.",
}
TEAM = {
    "architecture": "orchestrator",
    "system": "Delegate each question.",
    "subagents": ["math", "geo"],
    "agents.geo.prompt": "Use your tools, step by step.",
    "agents.geo.tools": ["lookup", "calculator"],
    "agents.geo.max_iterations": 4,
    **DESCRIBED,
    "temperature": 0.0,
}
TWO_STEP = {
    "messages": [{"role": "user", "content": "What is the population of Japan in millions, times 3?"}]
}


def objective(toy, tmp_path, **overrides):
    return toy_objective(EXAMPLE, toy, tmp_path, **overrides)


def test_the_orchestrator_delegates_and_the_trajectory_holds_the_sub_agents_turns(toy, tmp_path):
    out = objective(toy, tmp_path).pipeline.episode(nest(TEAM), TWO_STEP)
    assert out["output_text"] == "375" and out["delegations"] == 1
    assert [c["function"]["name"] for c in out["output_tools"]] == ["geo", "lookup", "calculator"]
    traj = out["trajectory"]
    assert [m["role"] for m in traj["messages"]] == ["assistant", "tool", "assistant"]  # the orchestrator's
    (geo,) = traj["subagents"]
    assert geo["agent"] == "geo" and geo["task"] == TWO_STEP["messages"][0]["content"]
    assert [m["role"] for m in geo["messages"]] == ["assistant", "tool", "assistant", "tool", "assistant"]
    assert traj["tool_calls"] == 3 and traj["turns"] == 2 + 3  # the sub-agent's turns count too


def test_the_orchestrator_and_each_sub_agent_get_their_own_prompt_and_tools(toy, tmp_path):
    pipe = objective(toy, tmp_path).pipeline
    toy.requests.clear()
    pipe.episode(nest({**TEAM, "orchestrator.prompt": "Hand each question to one agent."}), TWO_STEP)
    offered = lambda body: sorted(t["function"]["name"] for t in body.get("tools") or [])  # noqa: E731
    first, sub = toy.requests[0], toy.requests[1]
    assert first["messages"][0]["content"] == "Hand each question to one agent."
    assert offered(first) == ["geo", "math"]  # the orchestrator's tools are the chosen sub-agents
    assert sub["messages"][0] == {"role": "system", "content": "Use your tools, step by step."}
    assert sub["messages"][1]["content"] == TWO_STEP["messages"][0]["content"]  # the task it was handed
    assert offered(sub) == ["calculator", "lookup"]


def test_each_sub_agents_knobs_change_what_it_does(toy, tmp_path):
    obj = objective(toy, tmp_path)
    team = obj(nest(TEAM))
    assert team["score"] >= 0.9 and team["delegations"] == pytest.approx(1)
    # the geo agent's prompt, its tools, its turns, and whether it is chosen at all: each one matters
    for change in (
        {"agents.geo.prompt": "Answer briefly."},  # stops after the lookup
        {"agents.geo.tools": ["lookup"]},  # multiplies in its head: right half the time
        {"agents.geo.max_iterations": 1},  # no turn left to answer
        {"subagents": ["math"]},  # nobody knows capitals
    ):
        worse = obj(nest({**TEAM, **change}))
        assert worse["score"] < team["score"], change


def test_the_architecture_is_a_choice_the_grader_can_tell_apart(toy, tmp_path):
    grader = {"type": "string_check", "name": "d", "input": "{{sample.trajectory.delegations}}",
              "reference": "1", "operation": "eq"}  # fmt: skip
    obj = objective(toy, tmp_path, **{"objective.grader": yaml.safe_dump(grader, default_flow_style=True)})
    single = {"architecture": "single", "system": "Use your tools, step by step.", **DESCRIBED,
              "tools": ["calculator", "lookup"]}  # fmt: skip
    assert obj(nest(TEAM))["score"] == 1.0 and obj(nest(single))["score"] == 0.0


def test_the_team_example_runs_as_written_and_explores_both_architectures(toy, tmp_path):
    trials = run_example(EXAMPLE, tmp_path / "out", f"objective.llm.base_url={toy.base_url}", "n_trials=12")
    assert all(t["state"] == "complete" for t in trials)
    params = [t["params"] for t in trials]
    assert {p["architecture"] for p in params} == {"single", "orchestrator"}
    for p in params:  # the `when` conditions: each architecture's own knobs only
        assert ("tools" in p) == (p["architecture"] == "single")
        assert ("agents.geo.prompt" in p) == ("geo" in p.get("subagents", []))


@pytest.mark.parametrize(
    "edit,says",
    [
        (  # the Subset of sub-agents names one not defined
            {"space": {"subagents": {"type": "subset", "options": ["math", "web"]}}},
            "space.subagents: option 'web' is not an agent of objective.agents (math, geo, desk)",
        ),
        (
            {"space": {"agents.web.prompt": {"type": "text", "variants": ["x"]}}},
            "space.agents.web.prompt: 'web' is not an agent of objective.agents",
        ),
        (
            {"space": {"agents.geo.tools": {"type": "subset", "options": ["lookup", "search"]}}},
            "space.agents.geo.tools: option 'search' is not a tool of objective.tools",
        ),
        (
            {"space": {"agents.geo.temper": {"type": "float", "low": 0, "high": 1}}},
            "space.agents.geo.temper: 'temper' is not an agent's knob",
        ),
        (
            {"agents": {"geo": {"description": "Facts.", "tools": ["search"]}}},
            "objective.agents.geo.tools: 'search' is not a tool of objective.tools",
        ),
        (
            {"agents": {"geo": {"tools": ["lookup"]}}},
            "objective.agents.geo.description: required",
        ),
        (
            {
                "agents": None,
                "space": {"architecture": {"type": "choice", "values": ["single", "orchestrator"]}},
            },
            "space.architecture: 'orchestrator' needs sub-agents; define objective.agents",
        ),
    ],
)
def test_a_bad_team_names_the_key_and_the_fix(tmp_path, edit, says):
    cfg = yaml.safe_load(EXAMPLE.read_text())
    if "space" in edit:
        cfg["space"] = edit["space"]
    if "agents" in edit:
        cfg["objective"]["agents"] = edit["agents"]
    cfg["objective"]["llm"]["base_url"] = "http://127.0.0.1:9/v1"  # never reached: the check comes first
    for key, name in (("data", "rows.jsonl"), ("tools", "tools.yaml"), ("grader", "grader.json")):
        cfg["objective"][key] = str(EXAMPLE.parent / "agent" / name)
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = CliRunner().invoke(app, ["tune", str(path), "--set", f"output_dir={tmp_path / 'out'}"])
    assert r.exit_code == 2, r.output
    assert "\n" not in r.output.strip() and says in r.output
