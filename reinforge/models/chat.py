"""Chat rendering: the tokenizer's own chat template, or a plain default when it has none.

Tools (OpenAI's ``ChatCompletionTool`` list, a row's ``tools``) go to the template as ``tools=``; an
assistant message's ``tool_calls`` may carry OpenAI's JSON-string ``arguments``: templates get them
decoded, as Qwen's and Llama's expect.

>>> DEFAULT_CHAT_TEMPLATE.startswith("{%")
True
>>> from reinforge.models.tiny import build_tokenizer
>>> tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
>>> render_prompt(build_tokenizer(), [{"role": "user", "content": "2+3"}], tools=[tool])
'<|system|><tools>\\n{"name": "add", "parameters": {"type": "object"}}\\n</tools><|end|><|user|>2+3<|end|><|assistant|>'
"""

from __future__ import annotations

import json
from typing import Any

# Used for tokenizers that ship no template: readable role headers, one turn per block.
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def render_prompt(
    tokenizer: Any, messages: list[dict], add_generation_prompt: bool = True, tools: list[dict] | None = None
) -> str:
    """Render a conversation (and the tools it may call) to the prompt string the model continues."""
    template = getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
    return tokenizer.apply_chat_template(
        [_decoded_arguments(m) for m in messages],
        tools=tools or None,
        chat_template=template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def encode_prompt(tokenizer: Any, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    """Token ids of the rendered prompt (no extra special tokens: the template owns them)."""
    return tokenizer(render_prompt(tokenizer, messages, tools=tools), add_special_tokens=False)["input_ids"]


def encode_row(tokenizer: Any, row: dict) -> list[int]:
    """Token ids of a dataset row's prompt: its messages (minus a trailing answer) and its ``tools``."""
    return encode_prompt(tokenizer, prompt_messages(row), tools=row.get("tools"))


def _decoded_arguments(message: dict) -> dict:
    """``message`` with its tool calls' JSON-string arguments decoded (templates render them with tojson)."""
    calls = message.get("tool_calls")
    if not calls:
        return message
    decoded = []
    for call in calls:
        fn = call.get("function", {})
        if isinstance(fn.get("arguments"), str):
            try:
                fn = {**fn, "arguments": json.loads(fn["arguments"] or "{}")}
            except json.JSONDecodeError:
                pass  # not JSON: rendered as the string it is
            call = {**call, "function": fn}
        decoded.append(call)
    return {**message, "tool_calls": decoded}


def prompt_messages(row: dict) -> list[dict]:
    """The messages a policy is asked to continue: a row's messages minus a trailing assistant turn."""
    msgs = list(row["messages"])
    if msgs and msgs[-1].get("role") == "assistant":
        msgs = msgs[:-1]
    return msgs
