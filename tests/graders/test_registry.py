"""validate(), build_grader() and run(): error messages, file loading, OpenAI's response shape."""

import json

import pytest

from reinforge.errors import ConfigError, ReinforgeError
from reinforge.graders import from_spec, run, validate
from reinforge.graders.base import ERROR_DETAILS, ERROR_FLAGS
from tests.graders.openai_examples import (
    LABEL_MODEL,
    MULTI,
    PYTHON,
    SCORE_MODEL,
    STRING_CHECK,
    TEXT_SIMILARITY,
)

EXAMPLES = [STRING_CHECK, TEXT_SIMILARITY, PYTHON, SCORE_MODEL, LABEL_MODEL, MULTI]


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda s: s["type"])
def test_openai_examples_validate(spec):
    assert validate(spec) == []


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"type": "nope"}, "'nope' is not a grader type"),
        ({**STRING_CHECK, "operation": "regex"}, "grader.operation: 'regex'"),
        ({k: v for k, v in STRING_CHECK.items() if k != "reference"}, "grader.reference: missing"),
        ({**STRING_CHECK, "refernce": "x"}, "grader.refernce: unknown key"),  # typo caught
        ({**STRING_CHECK, "input": "{{model.output}}"}, "unknown namespace 'model'"),
        ({**TEXT_SIMILARITY, "evaluation_metric": "rouge_9"}, "evaluation_metric: 'rouge_9'"),
        ({**PYTHON, "source": "def grade(:\n"}, "syntax error"),
        ({**PYTHON, "limits": {"timeout": 1}}, "grader.limits.timeout: unknown"),
        ({**PYTHON, "limits": {"timeout_s": "1s"}}, "grader.limits.timeout_s: must be a positive number"),
        ({**SCORE_MODEL, "range": [1, 0]}, "grader.range"),
        ({**SCORE_MODEL, "input": []}, "grader.input: must be a non-empty list"),
        ({**LABEL_MODEL, "passing_labels": ["great"]}, "subset of labels"),
        ({**MULTI, "calculate_output": "0.5 * name +"}, "formula_parse_error"),
        ({**MULTI, "calculate_output": "name + args"}, "unknown variable(s) ['args']"),
        (
            {**MULTI, "graders": {"name": {**STRING_CHECK, "operation": "x"}}, "calculate_output": "name"},
            "grader.graders.name.operation",
        ),
        ({**STRING_CHECK, "pass_threshold": "high"}, "pass_threshold: must be a number"),
        ("[1, 2]", "must be an object"),
    ],
)
def test_validate_errors(spec, fragment, tmp_path):
    if isinstance(spec, str):
        p = tmp_path / "g.json"
        p.write_text(spec)
        with pytest.raises(ConfigError, match="must be a JSON object"):
            validate(p)
        return
    errors = validate(spec)
    assert errors and any(fragment in e for e in errors), errors
    with pytest.raises(ConfigError):
        from_spec(spec)


def test_specs_load_from_json_and_yaml(tmp_path):
    j, y = tmp_path / "g.json", tmp_path / "g.yaml"
    j.write_text(json.dumps(STRING_CHECK))
    y.write_text(
        "type: string_check\nname: y\ninput: '{{sample.output_text}}'\nreference: '{{item.label}}'\n"
        "operation: ilike\n"
    )
    assert from_spec(j).grade({"label": "a"}, {"output_text": "a"}).reward == 1.0
    assert from_spec(str(y)).grade({"label": "A"}, {"output_text": "xax"}).reward == 1.0
    with pytest.raises(ConfigError, match="not found"):
        from_spec(tmp_path / "missing.json")


def test_run_response_shape_lists_every_openai_flag():
    out = run(STRING_CHECK, "yes", {"label": "yes"})
    assert set(out) == {"reward", "metadata", "sub_rewards", "model_grader_token_usage_per_model"}
    meta = out["metadata"]
    assert set(meta) == {
        "name",
        "type",
        "errors",
        "execution_time",
        "scores",
        "token_usage",
        "sampled_model_name",
    }
    assert set(meta["errors"]) == set(ERROR_FLAGS) | set(ERROR_DETAILS)
    assert meta["name"] == "Example string check grader" and meta["execution_time"] >= 0
    missing = run(STRING_CHECK, "yes", {})
    assert missing["reward"] == 0.0 and missing["metadata"]["errors"]["invalid_variable_error"] is True


def test_run_with_json_sample_fills_output_json():
    spec = {**STRING_CHECK, "input": "{{sample.output_json.answer}}", "reference": "{{item.answer}}"}
    assert run(spec, '{"answer": "42"}', {"answer": "42"})["reward"] == 1.0


def test_reward_model_slot_is_lazy():
    spec = {"type": "reward_model", "name": "rm", "model": "/nonexistent/rm"}
    assert validate(spec) == []
    with pytest.raises(
        (ReinforgeError, OSError, ValueError)
    ):  # missing module or missing directory: clear error
        from_spec(spec)
