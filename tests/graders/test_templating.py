import pytest

from reinforge.graders.base import make_sample
from reinforge.graders.templating import TemplateError, TemplateVariableError, compile_template, render

ITEM = {
    "answer": "4",
    "ground_truth": {"date": "2024-01-02", "tags": ["a", "b"]},
    "n": 3,
    "ok": True,
    "d": {"x": 1},
}
SAMPLE = make_sample(
    '{"city": "Paris"}', output_tools=[{"function": {"name": "add", "arguments": '{"a":1}'}}]
)


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{item.answer}}", "4"),  # plain key
        ("{{ item.answer }}", "4"),  # spaces inside braces
        ("{{item.ground_truth.date}}", "2024-01-02"),  # nested
        ("{{item.ground_truth.tags[1]}}", "b"),  # index
        ("{{item.ground_truth.tags[-1]}}", "b"),  # negative index
        ("{{item.ground_truth.tags.0}}", "a"),  # JSON-path style index
        ('{{item["ground_truth"]["date"]}}', "2024-01-02"),  # bracketed keys
        ("{{sample.output_tools[0].function.arguments}}", '{"a":1}'),
        ("{{sample.output_json.city}}", "Paris"),  # parsed JSON output
        ("{{item.n}} and {{item.ok}}", "3 and true"),  # non-strings render as JSON
        ("{{item.d}}", '{"x": 1}'),
        ("no variables", "no variables"),
        ("a {{item.answer}} b {{item.answer}}", "a 4 b 4"),
    ],
)
def test_render(template, expected):
    assert render(template, ITEM, SAMPLE) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{item.missing}}",  # missing key
        "{{item.ground_truth.tags[5]}}",  # index out of range
        "{{item.answer.x}}",  # key into a string
        "{{sample.output_json.country}}",
        "{{item.ground_truth.date[0]}}",  # index into a string is not allowed
    ],
)
def test_missing_variable_is_a_lookup_error(template):
    with pytest.raises(TemplateVariableError):
        render(template, ITEM, SAMPLE)


def test_output_json_absent_when_not_json():
    with pytest.raises(TemplateVariableError):
        render("{{sample.output_json.city}}", {}, make_sample("not json"))


@pytest.mark.parametrize("template", ["{{foo.bar}}", "{{item.a b}}", "{{ }}", "{{item..a}}"])
def test_malformed_templates(template):
    with pytest.raises(TemplateError):
        compile_template(template)


def test_fast_and_slow_paths_agree():
    t = compile_template("{{item.ground_truth.date}}")
    assert t.render(ITEM, SAMPLE) == "2024-01-02"
    with pytest.raises(TemplateVariableError, match="key 'date' not found"):
        t.render({"ground_truth": {}}, SAMPLE)
