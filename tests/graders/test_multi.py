from reinforge.graders import from_spec, run
from reinforge.graders.base import make_sample
from tests.graders.openai_examples import MULTI, STRING_CHECK

TOOLS_OK = [{"function": {"name": "add", "arguments": '{"a": 1}'}}]
TOOLS_BAD_ARGS = [{"function": {"name": "add", "arguments": '{"a": 2}'}}]
ITEM = {"name": "add", "arguments": '{"a": 1}'}


def test_openai_example_weights_sub_graders():
    g = from_spec(MULTI)
    good, half = g.grade_batch([(ITEM, make_sample("", TOOLS_OK)), (ITEM, make_sample("", TOOLS_BAD_ARGS))])
    assert good.reward == 1.0 and good.sub_rewards == {"name": 1.0, "arguments": 1.0}
    assert half.reward == 0.5 and half.sub_rewards == {"name": 1.0, "arguments": 0.0}


def test_list_of_graders_is_keyed_by_name():
    spec = {**MULTI, "graders": list(MULTI["graders"].values())}
    assert from_spec(spec).grade(ITEM, make_sample("", TOOLS_OK)).reward == 1.0


def test_sub_grader_error_propagates_as_recorded_zero():
    g = from_spec(MULTI)
    grade = g.grade(ITEM, make_sample("no tools"))
    assert grade.reward == 0.0 and grade.errors == {"invalid_variable_error": True}


def test_math_error_in_formula_is_other_error():
    spec = {"type": "multi", "graders": {"a": STRING_CHECK}, "calculate_output": "1 / a"}
    grade = from_spec(spec).grade({"label": "x"}, make_sample("y"))
    assert grade.reward == 0.0 and grade.errors == {"other_error": True}


def test_run_response_has_sub_rewards():
    out = run(MULTI, make_sample("", TOOLS_BAD_ARGS), ITEM)
    assert out["reward"] == 0.5 and out["sub_rewards"] == {"name": 1.0, "arguments": 0.0}
    assert out["metadata"]["type"] == "multi"
