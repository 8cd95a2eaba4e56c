import pytest

from reinforge.graders.base import GraderError, make_sample
from reinforge.graders.templating import (
    TemplateError,
    TemplateVariableError,
    check_rows,
    compile_template,
    render,
    row_errors,
)

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


# -- templates checked against a run's first rows, before training (issue 14 item 2)

ROW = {"messages": [{"role": "user", "content": "2+2"}], "answer": "4", "meta": {"id": 7}}


def check(reference: str) -> list[str]:
    spec = {"type": "string_check", "name": "s", "input": "{{sample.output_text}}", "reference": reference}
    return row_errors(spec, ROW)


@pytest.mark.parametrize(
    "spec, needle",
    [
        # a typo in a top-level field names the field and the row's fields
        (
            {"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.answr}}"},
            "grader.reference: '{{item.answr}}': the row has no field 'answr' (its fields: answer, messages, meta)",
        ),
        # a nested path that does not resolve
        ({"type": "string_check", "input": "x", "reference": "{{item.meta.idx}}"}, "key 'idx' not found"),
        # a sample key no sample has (every sample has output_text, output_tools, output_json, choices)
        (
            {"type": "string_check", "input": "{{sample.output}}", "reference": "x"},
            "a sample has no 'output'",
        ),
        # a sub-grader of a multi grader is located by name
        (
            {"type": "multi", "graders": {"exact": {"type": "string_check", "input": "{{item.x}}"}}},
            "grader.graders.exact.input:",
        ),
        # a model grader's message, in a content part
        (
            {
                "type": "score_model",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "{{item.q}}"}]}],
            },
            "grader.input[0].content[0].text:",
        ),
    ],
)
def test_row_errors_name_the_template_and_field(spec, needle):
    errs = row_errors(spec, ROW)
    assert len(errs) == 1 and needle in errs[0], errs


def test_row_errors_pass_what_resolves_or_depends_on_the_output():
    assert check("{{item.answer}}") == []
    assert check("{{item.meta.id}} {{item.messages[0].content}}") == []
    assert check("{{sample.output_json.answer}}") == []  # known only once the model has answered
    # a python grader's source is code, not a template
    assert row_errors({"type": "python", "source": "def grade(s, i):\n    return f'{{i}}'\n"}, ROW) == []


def test_check_rows_raises_with_the_row_location():
    spec = {
        "type": "string_check",
        "name": "exact",
        "input": "{{sample.output_text}}",
        "reference": "{{item.answr}}",
    }
    check_rows(spec, [])  # no rows: nothing to check
    with pytest.raises(GraderError) as e:
        check_rows(spec, [("train.jsonl:1", {**ROW, "answr": "4"}), ("valid.jsonl:3", ROW)])
    assert str(e.value).startswith("valid.jsonl:3: grader 'exact' grader.reference: '{{item.answr}}'")
    assert e.value.kind == "invalid_variable_error"
