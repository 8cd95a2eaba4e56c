"""``reinforge eval`` on rows with tools runs episodes: the calls, the trajectory and the agent/* figures."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from reinforge.cli import app

ADD = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}
GRADER = {
    "type": "string_check",
    "name": "eq",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


def test_eval_runs_episodes_with_the_agent_tools(tmp_path, tiny_addition_dir):
    rows = [{"messages": [{"role": "user", "content": "3+4="}], "tools": [ADD], "answer": "7"}] * 2
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "grader.json").write_text(json.dumps(GRADER))
    (tmp_path / "agent.yaml").write_text(
        yaml.safe_dump({"tools": [{"python": "operator:add", "name": "add"}]})
    )
    out = tmp_path / "out.jsonl"
    args = ["eval", "--model", tiny_addition_dir, "--data", data, "--grader", tmp_path / "grader.json"]
    args += ["--agent", tmp_path / "agent.yaml", "--max-tokens", "8", "--output", out]
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert "agent/tool_calls_mean" in res.output and "agent/turns_mean" in res.output
    per_row = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(per_row) == 2 and all(r["trajectory"]["turns"] >= 1 and "output_tools" in r for r in per_row)


def test_a_bad_agent_file_is_one_line_naming_the_key(tmp_path, tiny_addition_dir):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "3+4="}], "answer": "7"}) + "\n")
    (tmp_path / "grader.json").write_text(json.dumps(GRADER))
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump({"max_turns": 3}))
    args = ["eval", "--model", tiny_addition_dir, "--data", data, "--grader", tmp_path / "grader.json"]
    res = CliRunner().invoke(app, [str(a) for a in args + ["--agent", tmp_path / "agent.yaml"]])
    assert res.exit_code == 2 and "max_turns" in res.output and "Traceback" not in res.output
