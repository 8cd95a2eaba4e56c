"""``reinforge grade --audit CONFIG.yaml [--json]`` and the audit ``reinforge rft`` prints before training
(``--skip-audit`` skips it)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from reinforge.cli import app

GRADER = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def rft_yaml(tiny_addition_dir, tmp_path):
    """A one-step RFT config on the addition task (the config `reinforge rft` and `grade --audit` take)."""
    cfg = {
        "model": str(tiny_addition_dir),
        "task": "addition",
        "output_dir": str(tmp_path / "run"),
        **dict(steps=1, prompts_per_step=2, group_size=2, max_new_tokens=4, eval_interval=0, save_interval=0),
        **dict(train_examples=32, validation_examples=4, audit_prompts=8),
    }
    path = tmp_path / "rft.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_grade_audit_json_is_one_parseable_object(rft_yaml):
    res = invoke("grade", "--audit", rft_yaml, "--set", "audit_samples=3", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["prompts"] == 8 and report["samples_per_prompt"] == 3 and report["errors"] == {}
    assert 0 <= report["zero_variance_fraction"] <= 1 and isinstance(report["reward_mean"], float)
    assert set(report["probes"]) == {"empty", "echo", "field_names", "long", "repeated_token", "refusal"}
    assert all(set(p) >= {"reward", "flagged"} for p in report["probes"].values())


def test_rft_prints_its_audit_before_training_and_skip_audit_skips_it(rft_yaml, tmp_path):
    res = invoke("rft", rft_yaml)
    assert res.exit_code == 0, res.output
    assert "grader audit: 8 prompts x 4 samples of the starting model" in res.stderr
    assert "zero_variance_fraction" in res.stderr and "probes: empty" in res.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["audit"]["flagged"] == []
    assert (tmp_path / "run" / "audit.json").exists()

    res = invoke("rft", rft_yaml, "--skip-audit", "--set", f"output_dir={tmp_path / 'skipped'}")
    assert res.exit_code == 0, res.output
    assert "grader audit" not in res.stderr and not (tmp_path / "skipped" / "audit.json").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--json"], "grade: --set and --json go with --audit CONFIG.yaml"),
        (["--audit", "{cfg}", "--grader", "g.json"], "the grader and the data come from the config; drop"),
        (
            ["--audit", "{cfg}", "--set", "audit_samples=1"],
            "audit_samples=1: the audit needs >= 1 prompt and >= 2",
        ),
    ],
)
def test_grade_audit_user_errors(rft_yaml, args, needle):
    res = invoke("grade", *[a.format(cfg=rft_yaml) for a in args])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.stderr.startswith("error: ") and needle in res.stderr, res.stderr


def test_grade_audit_refuses_agent_episodes(tmp_path):
    tool = {
        "type": "function",
        "function": {"name": "add", "parameters": {"type": "object", "properties": {}}},
    }
    row = {"messages": [{"role": "user", "content": "2+2"}], "tools": [tool], "answer": "4"}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump({"train_file": str(tmp_path / "train.jsonl"), "grader": GRADER}))
    res = invoke("grade", "--audit", cfg)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert (
        "grade --audit: agent episodes (an `agent` section, or rows with tools) are not audited" in res.stderr
    )
