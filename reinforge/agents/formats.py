"""Tool-call formats: how a chat template teaches a model to spell its calls, one parser per format.

``hermes`` is Qwen2.5/Qwen3's (and the built-in ``tiny:`` models'): ``<tool_call>`` blocks holding
``{"name": ..., "arguments": {...}}``. ``llama3_json`` is Llama 3.x's: a JSON object
``{"name": ..., "parameters": {...}}`` (several separated by ``;``), optionally after ``<|python_tag|>``.
A parser never raises: a call it cannot read becomes one message in ``ParsedTurn.invalid``.

>>> fmt = HERMES
>>> turn = fmt.parse('Let me add.\\n<tool_call>\\n{"name": "add", "arguments": {"a": 1}}\\n</tool_call>')
>>> turn.content, turn.calls[0].name, turn.calls[0].arguments
('Let me add.', 'add', {'a': 1})
>>> fmt.parse(fmt.render(turn)) == turn
True
>>> HERMES.parse("<tool_call>{oops</tool_call>").invalid
['<tool_call> block is not valid JSON: Expecting property name enclosed in double quotes at char 1']
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from reinforge.agents.calls import ParsedTurn, ToolCall


class ToolCallFormat(Protocol):
    """How tool calls are spelled in a model's text. ``parse(render(t)) == t`` for every turn the
    format can express (calls numbered ``call_<start>``, ``call_<start+1>``, ... in order)."""

    name: str

    def parse(self, text: str, start: int = 0) -> ParsedTurn:
        """Split a completion into content, calls (ids from ``call_<start>``) and invalid calls."""
        ...

    def render(self, turn: ParsedTurn) -> str:
        """The text a model following the format writes for ``turn`` (its ``invalid`` are not rendered)."""
        ...


def _call_from(obj: Any, key: str, where: str, call_id: str) -> ToolCall | str:
    """A ToolCall from a decoded JSON object, or the message that says why it is not one."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return f"{where} is not an object with a string 'name'"
    arguments = obj.get(key, obj.get("arguments", {}))  # either key is accepted on input
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as e:
            return f"{where}: '{key}' is a string that is not JSON: {e.msg} at char {e.pos}"
    if not isinstance(arguments, dict):
        return f"{where}: '{key}' must be an object, got {type(arguments).__name__}"
    return ToolCall(obj["name"], arguments, call_id)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # as transformers' tojson filter writes it


class HermesFormat:
    """``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks after the content, each
    on its own line, exactly as Qwen2.5's chat template renders an assistant message's ``tool_calls``."""

    name = "hermes"
    _block = re.compile(r"\n?<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)

    def parse(self, text: str, start: int = 0) -> ParsedTurn:
        calls: list[ToolCall] = []
        invalid: list[str] = []
        for m in self._block.finditer(text):
            if not m.group(0).endswith("</tool_call>"):
                invalid.append("<tool_call> block is not closed with </tool_call>")
                continue
            try:
                obj = json.loads(m.group(1))
            except json.JSONDecodeError as e:
                invalid.append(f"<tool_call> block is not valid JSON: {e.msg} at char {e.pos}")
                continue
            call = _call_from(obj, "arguments", "<tool_call> block", f"call_{start + len(calls)}")
            (calls if isinstance(call, ToolCall) else invalid).append(call)  # type: ignore[arg-type]
        return ParsedTurn(self._block.sub("", text), calls, invalid)

    def render(self, turn: ParsedTurn) -> str:
        blocks = (
            f'\n<tool_call>\n{{"name": {_dumps(c.name)}, "arguments": {_dumps(c.arguments)}}}\n</tool_call>'
            for c in turn.calls
        )
        return turn.content + "".join(blocks)


class Llama3JsonFormat:
    """Llama 3.x JSON calls: ``{"name": ..., "parameters": {...}}`` objects separated by ``; ``, on the
    line after any content (Llama's templates render either content or calls; both are kept here). The
    calls start at ``<|python_tag|>`` or at the first line that opens with ``{"name"``."""

    name = "llama3_json"
    _start = re.compile(r'(?:^|\n)(?:<\|python_tag\|>|(?=\{\s*"name"))')

    def parse(self, text: str, start: int = 0) -> ParsedTurn:
        m = self._start.search(text)
        if m is None:
            return ParsedTurn(text)
        content, rest = text[: m.start()], text[m.end() :]
        calls: list[ToolCall] = []
        invalid: list[str] = []
        decoder = json.JSONDecoder()
        pos = 0
        while True:
            pos = len(rest) - len(rest[pos:].lstrip(" \t\n;"))
            if pos >= len(rest) or rest[pos:].strip() in ("<|eom_id|>", "<|eot_id|>"):
                break
            try:
                obj, pos = decoder.raw_decode(rest, pos)
            except json.JSONDecodeError as e:
                invalid.append(f"tool call is not valid JSON: {e.msg} at char {e.pos}")
                break  # the rest cannot be split into objects any more
            call = _call_from(obj, "parameters", "tool call", f"call_{start + len(calls)}")
            (calls if isinstance(call, ToolCall) else invalid).append(call)  # type: ignore[arg-type]
        return ParsedTurn(content, calls, invalid)

    def render(self, turn: ParsedTurn) -> str:
        calls = "; ".join(
            f'{{"name": {_dumps(c.name)}, "parameters": {_dumps(c.arguments)}}}' for c in turn.calls
        )
        if not calls:
            return turn.content
        return f"{turn.content}\n{calls}" if turn.content else calls


HERMES = HermesFormat()
LLAMA3_JSON = Llama3JsonFormat()
FORMATS: dict[str, ToolCallFormat] = {f.name: f for f in (HERMES, LLAMA3_JSON)}


def format_for(tokenizer: Any) -> ToolCallFormat:
    """The format a tokenizer's chat template teaches: Llama 3.x's JSON calls when the template speaks
    of ``<|python_tag|>`` or ``"parameters"``, else Hermes (Qwen2.5/Qwen3, ``tiny:`` models).

    >>> from reinforge.models.tiny import build_tokenizer
    >>> format_for(build_tokenizer()).name
    'hermes'
    """
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # several named templates: the tool one speaks for calls
        template = template.get("tool_use") or template.get("default") or ""
    if "<tool_call>" in template:
        return HERMES
    if "<|python_tag|>" in template or '"parameters": ' in template:
        return LLAMA3_JSON
    return HERMES
