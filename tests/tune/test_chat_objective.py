"""``chat`` studies on the user's rows and grader, against a real ``reinforge serve`` on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.errors import DataError
from reinforge.tune.chat_objective import chat_messages, load_shots
from tests.serve.helpers import free_port
from tests.tune.helpers import run_example

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/tune/chat.yaml"
runner = CliRunner()


@pytest.mark.slow  # the server warms its tiny model up on the first request (~1 min on 2 busy cores)
def test_the_chat_example_runs_against_reinforge_serve(served, tmp_path):
    server, key_env = served
    out = tmp_path / "out"
    url, key = f"objective.llm.base_url={server.url}/v1", f"objective.llm.api_key_env={key_env}"
    trials = run_example(EXAMPLE, out, url, key, "n_trials=5", "estimate_probes=1")
    assert [t["state"] for t in trials] == ["complete"] * 5
    for t in trials:
        m = t["metrics"]
        assert 0.0 <= m["score"] <= 1.0 and m["tokens"] > 0 and len(m["scores"]) == 24
    assert sum(t["metrics"]["model_calls"] for t in trials) > 0  # the endpoint answered (not all cached)
    assert (out / "best.yaml").exists()


def test_an_unreachable_endpoint_stops_before_anything_starts(tmp_path):
    out = tmp_path / "out"
    url = f"http://127.0.0.1:{free_port()}/v1"
    sets = [f"output_dir={out}", f"objective.llm.base_url={url}", "objective.llm.api_key_env=null"]
    r = runner.invoke(app, ["tune", str(EXAMPLE), *[a for s in sets for a in ("--set", s)]])
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"objective.llm.base_url: {url} does not answer" in line and "fix base_url" in line
    assert not (out / "study.db").exists()  # no study, no pilot


def test_chat_messages_put_the_tuned_system_prompt_and_shots_before_the_row(tmp_path):
    row = {"messages": [{"role": "system", "content": "own"}, {"role": "user", "content": "2+2"}]}
    shots = [[{"role": "user", "content": "1+1"}, {"role": "assistant", "content": "2"}]]
    assert [m["content"] for m in chat_messages({}, row, shots)] == ["own", "2+2"]  # the row's own system
    msgs = chat_messages({"system": "tuned", "few_shot": 3}, row, shots)
    assert [m["content"] for m in msgs] == ["tuned", "1+1", "2", "2+2"]
    bad = tmp_path / "shots.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "1+1"}]}) + "\n")
    with pytest.raises(DataError, match=r"shots.jsonl:1: a few-shot example must end with the assistant"):
        load_shots(bad)


def test_a_chat_study_without_a_grader_names_the_key(tmp_path):
    cfg = yaml.safe_load(EXAMPLE.read_text())
    del cfg["objective"]["grader"]
    path = tmp_path / "chat.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = runner.invoke(app, ["tune", str(path), "--set", f"output_dir={tmp_path / 'out'}"])
    assert r.exit_code == 2 and "objective.grader: give the OpenAI grader JSON" in r.output
