"""RFT rows' ``tools``: OpenAI ChatCompletionTool lists, a malformed one fails naming file:line and the key."""

from __future__ import annotations

import pytest

from reinforge.data.rft import load_rft_rows
from reinforge.errors import DataError
from tests.helpers import write_jsonl

MESSAGES = [{"role": "user", "content": "12345+67890"}]
ADD = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}


def test_rows_with_tools_load(tmp_path):
    strict = {"type": "function", "function": {"name": "mul", "description": "x*y", "strict": True}}
    rows = [{"messages": MESSAGES, "tools": [ADD, strict]}, {"messages": MESSAGES}]
    assert load_rft_rows(write_jsonl(tmp_path / "d.jsonl", rows)) == rows


@pytest.mark.parametrize(
    "tools, error",
    [
        ({"add": ADD}, "'tools' must be a list"),  # an object, not a list
        (["add"], 'tools[0]: must be {"type": "function"'),  # a bare name
        (
            [{"type": "function", "name": "add"}],
            'tools[0]: must be {"type": "function"',
        ),  # flattened (Responses)
        ([ADD, {"type": "code", "function": {}}], 'tools[1]: must be {"type": "function"'),
        ([{"type": "function", "function": {"parameters": {}}}], "tools[0].function.name: None must match"),
        (
            [{"type": "function", "function": {"name": "add two"}}],
            "tools[0].function.name: 'add two' must match",
        ),
        (
            [{"type": "function", "function": {"name": "add", "parameters": "a, b"}}],
            ".function.parameters: must be",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}],
            ".parameters: must be a",
        ),
        (
            [{"type": "function", "function": {"name": "f", "description": 3}}],
            "tools[0].function.description: must",
        ),
        ([ADD, ADD], "tools[1].function.name: 'add' is given twice"),
    ],
)
def test_malformed_tools_name_the_line_and_key(tmp_path, tools, error):
    path = write_jsonl(tmp_path / "d.jsonl", [{"messages": MESSAGES}, {"messages": MESSAGES, "tools": tools}])
    with pytest.raises(DataError) as e:
        load_rft_rows(path)
    assert str(e.value).startswith(f"{path}:2: ") and error in str(e.value)
