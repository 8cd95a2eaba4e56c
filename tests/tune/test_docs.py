"""docs/tune_agents.md's ```python snippets run as they are, in order, in one namespace: an OpenAI Agents
SDK agent tuned through ``python:`` against ``reinforge serve``, offline."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "tune_agents.md"


@pytest.mark.slow  # ~40 s on 2 busy cores: teaching the served model (SFT) and 12 trials of the agent
def test_tune_agents_doc_snippets_run(tmp_path, monkeypatch):
    pytest.importorskip("agents")  # the dev extra's openai-agents
    snippets = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.DOTALL | re.MULTILINE)
    assert len(snippets) == 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the doc puts examples/tune on it
    monkeypatch.setenv("SDK_AGENT_BASE_URL", "unset")  # the doc sets both; restored afterwards
    monkeypatch.setenv("SDK_AGENT_API_KEY", "unset")
    namespace: dict = {"__name__": "tune_agents_doc"}
    try:
        for i, code in enumerate(snippets):
            exec(compile(code, f"{DOC}:snippet{i}", "exec"), namespace)
    finally:
        if "server" in namespace:
            namespace["server"].__exit__()


def test_the_sdk_agent_example_config_loads_and_names_an_importable_objective(monkeypatch):
    """Fast: the YAML of docs/tune_agents.md loads and its `python:` function imports."""
    pytest.importorskip("agents")
    from reinforge.config import load_config
    from reinforge.tune.factory import build_objective
    from reinforge.tune.schema import TuneConfig

    example = DOC.parents[1] / "examples/tune/sdk_agent.yaml"
    monkeypatch.syspath_prepend(str(example.parent))
    cfg = load_config(TuneConfig, example)
    assert build_objective(cfg, example.parent).__name__ == "objective" and cfg.n_trials == 12
