"""The tiny models' chat template speaks the Hermes tool-call format (Qwen2.5's layout) through the real
tokenizer's apply_chat_template, and renders tool-free conversations exactly as before."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from reinforge.agents.calls import ParsedTurn, ToolCall
from reinforge.agents.formats import HERMES, format_for
from reinforge.models.chat import render_prompt
from reinforge.models.tiny import build_tokenizer

# the template before tools (the cached models' and every SFT'd tiny model's until CACHE_VERSION 4)
OLD_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
    },
}
CALL = ToolCall("add", {"a": 12345, "b": 67890}, "call_0")


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "12+7"}],  # one question
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],  # a system prompt
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
    ],
)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_conversations_without_tools_render_as_before(tok, messages, add_generation_prompt):
    old = tok.apply_chat_template(
        messages, chat_template=OLD_TEMPLATE, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    assert render_prompt(tok, messages, add_generation_prompt) == old


def test_tools_go_in_the_system_turn(tok):
    messages = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "12345+67890"}]
    text = render_prompt(tok, messages, tools=[ADD, ADD | {"function": {"name": "mul"}}])
    assert text == (
        '<|system|>Use tools.\n<tools>\n{"name": "add", "description": "Add two integers.", "parameters": '
        '{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}\n{"name": "mul"}\n'
        "</tools><|end|><|user|>12345+67890<|end|><|assistant|>"
    )


@pytest.mark.parametrize("content", ["", "Let me add."])
@pytest.mark.parametrize("as_openai", [True, False])  # OpenAI's JSON-string arguments, or an object
def test_assistant_calls_render_as_the_hermes_format_writes_them(tok, content, as_openai):
    turn = ParsedTurn(content, [CALL, ToolCall("add", {"a": 1, "b": 2}, "call_1")])
    message = turn.to_message()
    if not as_openai:
        message["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}} for c in turn.calls]
    text = render_prompt(tok, [{"role": "user", "content": "q"}, message], add_generation_prompt=False)
    generated = text.removeprefix("<|user|>q<|end|><|assistant|>").removesuffix("<|end|>")
    assert generated == HERMES.render(turn)  # what the model learns to write is what the parser reads
    assert HERMES.parse(generated) == turn


def test_tool_results_share_one_user_turn(tok):
    messages = [
        {"role": "user", "content": "q"},
        ParsedTurn("", [CALL, CALL]).to_message(),
        {"role": "tool", "tool_call_id": "call_0", "content": "80235"},
        {"role": "tool", "tool_call_id": "call_1", "content": "80235"},
        {"role": "assistant", "content": "80235"},
    ]
    text = render_prompt(tok, messages, add_generation_prompt=False)
    assert text.endswith(
        "<|user|><tool_response>80235</tool_response><tool_response>80235</tool_response><|end|>"
        "<|assistant|>80235<|end|>"
    )


def test_every_character_is_a_token(tok):
    turn = ParsedTurn("Sure.", [CALL])
    messages = [
        {"role": "user", "content": "12345+67890"},
        turn.to_message(),
        {"role": "tool", "content": "80235"},
    ]
    text = render_prompt(tok, messages, tools=[ADD])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_a_saved_tiny_model_keeps_the_template(tiny_untrained_dir, tok):
    loaded = AutoTokenizer.from_pretrained(tiny_untrained_dir)
    assert format_for(loaded).name == "hermes"
    messages = [{"role": "user", "content": "1+2"}]
    assert render_prompt(loaded, messages, tools=[ADD]) == render_prompt(tok, messages, tools=[ADD])
