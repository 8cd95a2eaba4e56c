"""docs/agents.md's ```python snippets run as they are, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "agents.md"


def test_agents_doc_snippets_run(tmp_path, monkeypatch, capsys):
    snippets = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.DOTALL | re.MULTILINE)
    assert len(snippets) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "agents_doc"}
    for i, code in enumerate(snippets):
        exec(compile(code, f"{DOC}:snippet{i}", "exec"), namespace)
    assert "<tools>" in capsys.readouterr().out  # the rendered prompt shows the tools
    namespace["server"].should_exit = True
