"""Chat rendering: the tokenizer's own chat template, or a plain default when it has none.

>>> DEFAULT_CHAT_TEMPLATE.startswith("{%")
True
"""

from __future__ import annotations

from typing import Any

# Used for tokenizers that ship no template: readable role headers, one turn per block.
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def render_prompt(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Render a conversation to the prompt string the model continues."""
    template = getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def encode_prompt(tokenizer: Any, messages: list[dict]) -> list[int]:
    """Token ids of the rendered prompt (no extra special tokens: the template owns them)."""
    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def prompt_messages(row: dict) -> list[dict]:
    """The messages a policy is asked to continue: a row's messages minus a trailing assistant turn."""
    msgs = list(row["messages"])
    if msgs and msgs[-1].get("role") == "assistant":
        msgs = msgs[:-1]
    return msgs
