"""``workflow`` studies: routing methods, per-step prompts, structured output, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.config import load_config
from reinforge.errors import ConfigError
from reinforge.tune.factory import build_objective
from reinforge.tune.schema import TuneConfig
from reinforge.tune.space import nest
from reinforge.tune.toyagent import ToyEndpoint
from reinforge.tune.workflow_objective import Workflow
from tests.tune.helpers import run_example

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/tune/workflow.yaml"


@pytest.fixture(scope="module")
def toy():
    with ToyEndpoint() as endpoint:
        yield endpoint


def objective(toy, tmp_path):
    sets = [f"objective.llm.base_url={toy.base_url}", f"output_dir={tmp_path}"]
    return build_objective(load_config(TuneConfig, EXAMPLE, sets), EXAMPLE.parent)


def test_the_routing_method_and_the_step_prompts_decide_the_score(toy, tmp_path):
    obj = objective(toy, tmp_path)
    base = {
        "steps.math.prompt": "Compute exactly: {input}",
        "steps.geography.prompt": "A geography question: {input}",
    }
    by_keywords = obj(
        nest({**base, "steps.route.method": "keywords"})
    )  # "what is" sends products to geography
    by_llm = obj(nest({**base, "steps.route.method": "llm"}))
    assert by_keywords["score"] == 0.5 and by_llm["score"] == 1.0  # products went to the geography step
    loose = obj(nest({**base, "steps.route.method": "llm", "steps.math.prompt": "Answer: {input}"}))
    assert loose["score"] == 0.5  # the math step guesses unless asked for exact arithmetic
    assert by_llm["model_calls"] > by_keywords["model_calls"]  # the llm router costs a call per row


def test_a_step_with_an_output_schema_answers_json(toy, tmp_path):
    pipe = objective(toy, tmp_path).pipeline
    row = {"messages": [{"role": "user", "content": "What is 12 * 12?"}]}
    params = nest(
        {
            "steps.route.method": "llm",
            "steps.math.prompt": "Exactly: {input}",
            "steps.math.output_schema": "short",
        }
    )
    assert json.loads(pipe.run(params, row)["output_text"]) == {"answer": "144"}


@pytest.mark.slow  # the embedding router loads MiniLM (~30 s on 2 busy cores)
def test_the_workflow_example_runs_as_written(toy, tmp_path):
    trials = run_example(EXAMPLE, tmp_path / "out", f"objective.llm.base_url={toy.base_url}", "n_trials=24")
    assert all(t["state"] == "complete" for t in trials) and max(t["values"][0] for t in trials) == 1.0


@pytest.mark.parametrize(
    "steps,says",
    [
        (
            {"r": {"kind": "route", "routes": {"a": "nowhere"}}},
            "workflow.steps.r.routes.a: 'nowhere' is not a step (r)",
        ),
        ({"r": {"prompt": "{input}", "next": "b"}}, "workflow.steps.r.next: 'b' is not a step"),
        (
            {"r": {"prompt": "{input}", "output_schema": "long"}},
            "workflow.steps.r.output_schema: 'long' is not in schemas",
        ),
        ({"r": {"kind": "route"}}, "a route step needs {label: step} routes"),
    ],
)
def test_a_workflow_routing_to_an_unknown_step_names_the_key_and_the_fix(steps, says):
    with pytest.raises(ConfigError) as e:
        Workflow.model_validate({"start": "r", "steps": steps})
    assert says in str(e.value)


def test_a_workflow_file_routing_to_an_unknown_step_is_one_line_naming_the_file_and_key(tmp_path):
    # issue 18 part 7, through the CLI: before, the line named the key but not the file it is in
    cfg = yaml.safe_load(EXAMPLE.read_text())
    steps = yaml.safe_load((EXAMPLE.parent / cfg["objective"]["workflow"]).read_text())
    steps["steps"]["route"]["routes"]["math"] = "maths"
    (tmp_path / "steps.yaml").write_text(yaml.safe_dump(steps))
    cfg["objective"]["workflow"] = str(tmp_path / "steps.yaml")
    for key in ("data", "grader"):
        cfg["objective"][key] = str(EXAMPLE.parent / cfg["objective"][key])
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = CliRunner().invoke(app, ["tune", str(path), "--set", f"output_dir={tmp_path / 'o'}"])
    line = r.output.strip()
    assert r.exit_code == 2 and "\n" not in line
    assert f"{tmp_path / 'steps.yaml'}: workflow.steps.route.routes.math: 'maths' is not a step" in line
    assert "route to one of them" in line


def test_a_knob_of_an_unknown_step_is_named(tmp_path):
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["space"] = {"steps.maths.prompt": {"type": "text", "variants": ["x"]}}
    for key in ("data", "grader", "workflow"):
        cfg["objective"][key] = str(EXAMPLE.parent / cfg["objective"][key])
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["tune", str(path), "--set", f"output_dir={tmp_path / 'o'}"])
    assert r.exit_code == 2 and "space.steps.maths.prompt: write steps.<step>.<knob>" in r.output
