"""Helpers for the tune tests: run an example study through the CLI and read its trials."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.config import load_config
from reinforge.tune.factory import build_objective
from reinforge.tune.schema import TuneConfig

GOOD_AGENT = {  # examples/tune/agent.yaml's configuration that answers every question (the toy endpoint)
    "system": "Use your tools, step by step.",
    "tools": ["calculator", "lookup"],
    "tool_descriptions.calculator": "Exact arithmetic: multiply, add, subtract.",
    "tool_descriptions.lookup": "Facts about a country: its capital and population.",
    "max_iterations": 5,
    "temperature": 0.0,
}


def run_example(example: Path, out: Path, *sets: str) -> list[dict]:
    """``reinforge tune EXAMPLE --set output_dir=OUT --set ...``; its trials (the run must succeed)."""
    args = ["tune", str(example), "--set", f"output_dir={out}", *[a for s in sets for a in ("--set", s)]]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads((out / "trials.json").read_text())["trials"]


def toy_objective(example: Path, toy, tmp_path: Path, **overrides):
    """The objective of ``example`` pointed at the scripted endpoint ``toy``, with ``--set``-style overrides."""
    sets = [f"objective.llm.base_url={toy.base_url}", f"output_dir={tmp_path}"]
    sets += [f"{k}={v}" for k, v in overrides.items()]
    return build_objective(load_config(TuneConfig, example, sets), example.parent)
