"""Prompt rendering with a row's tools."""

from __future__ import annotations

from reinforge.models.chat import encode_prompt, encode_row, render_prompt
from reinforge.models.tiny import build_tokenizer
from tests.helpers import word_tokenizer

TOOL = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
ROW = {
    "messages": [{"role": "user", "content": "1+2"}, {"role": "assistant", "content": "3"}],
    "tools": [TOOL],
}


def test_encode_row_renders_the_rows_tools():
    tok = build_tokenizer()
    ids = encode_row(tok, ROW)
    assert ids == encode_prompt(tok, ROW["messages"][:1], tools=[TOOL])
    assert '<tools>\n{"name": "add"' in tok.decode(ids)
    assert encode_row(tok, {"messages": ROW["messages"]}) == encode_prompt(tok, ROW["messages"][:1])


def test_string_arguments_that_are_not_json_render_as_they_are():
    tok = build_tokenizer()
    call = {"id": "c", "type": "function", "function": {"name": "add", "arguments": "{not json"}}
    text = render_prompt(
        tok, [{"role": "assistant", "content": "", "tool_calls": [call]}], add_generation_prompt=False
    )
    assert '"arguments": "{not json"' in text


def test_a_tokenizer_without_a_template_ignores_tools():
    tok = word_tokenizer()
    assert render_prompt(tok, ROW["messages"][:1], tools=[TOOL]) == render_prompt(tok, ROW["messages"][:1])
