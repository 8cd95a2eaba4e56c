"""What one model turn holds: text and tool calls, in reinforge's own shape and in OpenAI's.

>>> call = ToolCall("add", {"a": 1, "b": 2}, "call_0")
>>> call.to_openai()["function"]
{'name': 'add', 'arguments': '{"a": 1, "b": 2}'}
>>> ToolCall.from_openai(call.to_openai()) == call
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class ToolCall:
    """One call the model made: the tool's name, its parsed JSON arguments and an id unique in the episode."""

    name: str
    arguments: dict
    id: str = "call_0"  # "call_<n>", n counted over the episode

    def to_openai(self) -> dict:
        """OpenAI's shape: ``{"id", "type": "function", "function": {"name", "arguments": <JSON string>}}``."""
        arguments = json.dumps(self.arguments, ensure_ascii=False)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}

    @classmethod
    def from_openai(cls, call: dict) -> ToolCall:
        """The inverse of :meth:`to_openai` (``arguments`` may be a JSON string or an object)."""
        fn = call.get("function", call)
        arguments = fn.get("arguments", {})
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        return cls(fn["name"], arguments, call.get("id", "call_0"))


@dataclass
class ParsedTurn:
    """A model's turn split into the text outside tool-call markup, the calls, and the malformed calls."""

    content: str
    calls: list[ToolCall] = field(default_factory=list)
    invalid: list[str] = field(
        default_factory=list
    )  # one message per malformed call (bad JSON, unknown shape)

    def to_message(self) -> dict:
        """The turn as an OpenAI assistant message (``tool_calls`` only when there are calls)."""
        message: dict = {"role": "assistant", "content": self.content}
        if self.calls:
            message["tool_calls"] = [c.to_openai() for c in self.calls]
        return message
