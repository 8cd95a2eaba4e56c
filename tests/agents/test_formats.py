"""Tool-call formats: parse(render(t)) == t per format (property tests), and what the parsers make of
malformed or unusual text (table tests): an invalid call is a message, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforge.agents.calls import ParsedTurn, ToolCall
from reinforge.agents.formats import FORMATS, HERMES, LLAMA3_JSON, format_for
from reinforge.models.tiny import build_tokenizer

names = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(), json_values, max_size=4)


@st.composite
def turns(draw, content_ok, both: bool = True, start: int = 0):
    content = draw(st.text().filter(content_ok))
    calls = draw(st.lists(st.tuples(names, arguments), max_size=0 if (content and not both) else 3))
    return ParsedTurn(content, [ToolCall(n, a, f"call_{start + i}") for i, (n, a) in enumerate(calls)])


def hermes_content(text: str) -> bool:
    return "<tool_call>" not in text  # markup inside content would be read as a call


def llama_content(text: str) -> bool:
    # a line opening with {"name" (or <|python_tag|>) is where Llama's calls start
    return LLAMA3_JSON.parse(text).calls == [] and LLAMA3_JSON.parse(text).invalid == []


@settings(max_examples=200, deadline=None)
@given(turns(hermes_content))
def test_hermes_round_trip(turn):
    assert HERMES.parse(HERMES.render(turn)) == turn


@settings(max_examples=200, deadline=None)
@given(turns(llama_content, both=True))
def test_llama3_json_round_trip(turn):
    assert LLAMA3_JSON.parse(LLAMA3_JSON.render(turn)) == turn


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.integers(0, 50), st.data())
def test_ids_continue_from_start(name, start, data):
    fmt = FORMATS[name]
    turn = data.draw(turns(hermes_content if name == "hermes" else llama_content, start=start))
    assert fmt.parse(fmt.render(turn), start=start) == turn


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.text())
def test_parse_never_raises(name, text):
    turn = FORMATS[name].parse(text)
    assert isinstance(turn.content, str) and all(isinstance(m, str) for m in turn.invalid)


CALL = '{"name": "add", "arguments": {"a": 1}}'


@pytest.mark.parametrize(
    "text, content, calls, invalid",
    [
        ("just text", "just text", [], []),
        (f"<tool_call>\n{CALL}\n</tool_call>", "", [("add", {"a": 1})], []),  # as the template renders it
        (f"<tool_call>{CALL}</tool_call><tool_call>{CALL}</tool_call>", "", [("add", {"a": 1})] * 2, []),
        (f"before <tool_call>{CALL}</tool_call> after", "before  after", [("add", {"a": 1})], []),
        ('<tool_call>{"name": "add", "arguments": "{\\"a\\": 1}"}</tool_call>', "", [("add", {"a": 1})], []),
        ('<tool_call>{"name": "add"}</tool_call>', "", [("add", {})], []),  # no arguments: none needed
        ("<tool_call>{oops</tool_call>", "", [], ["<tool_call> block is not valid JSON: Expecting property"]),
        (
            "<tool_call>[1, 2]</tool_call>",
            "",
            [],
            ["<tool_call> block is not an object with a string 'name'"],
        ),
        (
            '<tool_call>{"name": "f", "arguments": [1]}</tool_call>',
            "",
            [],
            ["<tool_call> block: 'arguments' must"],
        ),
        (
            '<tool_call>{"name": "f", "arguments": "no"}</tool_call>',
            "",
            [],
            ["<tool_call> block: 'arguments' is a"],
        ),
        (f"ok <tool_call>{CALL}", "ok ", [], ["<tool_call> block is not closed"]),  # cut off mid-call
        (
            f"<tool_call>{{bad</tool_call><tool_call>{CALL}</tool_call>",
            "",
            [("add", {"a": 1})],
            ["<tool_call> block is"],
        ),
    ],
)
def test_hermes_parse(text, content, calls, invalid):
    turn = HERMES.parse(text)
    assert turn.content == content
    assert [(c.name, c.arguments) for c in turn.calls] == calls
    assert [c.id for c in turn.calls] == [f"call_{i}" for i in range(len(calls))]
    assert len(turn.invalid) == len(invalid) and all(m.startswith(p) for m, p in zip(turn.invalid, invalid))


LCALL = '{"name": "add", "parameters": {"a": 1}}'


@pytest.mark.parametrize(
    "text, content, calls, invalid",
    [
        ("just text", "just text", [], []),
        ('{"answer": 5}', '{"answer": 5}', [], []),  # JSON that is no call is an answer
        (LCALL, "", [("add", {"a": 1})], []),
        (f"<|python_tag|>{LCALL}", "", [("add", {"a": 1})], []),  # the tag Llama 3.1 writes before calls
        (f"{LCALL}; {LCALL}", "", [("add", {"a": 1})] * 2, []),
        (f"{LCALL}<|eom_id|>", "", [("add", {"a": 1})], []),
        (f"Let me add.\n{LCALL}", "Let me add.", [("add", {"a": 1})], []),
        ('{"name": "add", "arguments": {"a": 1}}', "", [("add", {"a": 1})], []),  # Qwen's key, accepted
        ('{"name": "add", "parameters": {"a": 1', "", [], ["tool call is not valid JSON"]),
        (
            f'{LCALL}; {{"name": 3}}',
            "",
            [("add", {"a": 1})],
            ["tool call is not an object with a string 'name'"],
        ),
    ],
)
def test_llama3_json_parse(text, content, calls, invalid):
    turn = LLAMA3_JSON.parse(text)
    assert turn.content == content
    assert [(c.name, c.arguments) for c in turn.calls] == calls
    assert len(turn.invalid) == len(invalid) and all(m.startswith(p) for m, p in zip(turn.invalid, invalid))


class _Tok:
    def __init__(self, template):
        self.chat_template = template


@pytest.mark.parametrize(
    "template, name",
    [
        (build_tokenizer().chat_template, "hermes"),  # the tiny models
        ('...{{- \'\\n<tool_call>\\n{"name": "\' }}...', "hermes"),  # Qwen2.5's
        ("...{{- '<|python_tag|>' + tool_call.name }}...", "llama3_json"),  # Llama 3.1's
        (
            "...{{- '{\"name\": \"' + tool_call.name + '\", ' }}{{- '\"parameters\": ' }}...",
            "llama3_json",
        ),  # 3.2
        ({"default": "plain", "tool_use": "<tool_call>"}, "hermes"),  # named templates
        (None, "hermes"),  # no template: the default
    ],
)
def test_format_for(template, name):
    assert format_for(_Tok(template)).name == name
