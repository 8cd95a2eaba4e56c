"""Tools in ``/v1/chat/completions``: OpenAI's ``tools``/``tool_choice`` in, ``tool_calls`` out.

The request's tools are rendered by the model's chat template (``tools=``), its messages keep their
``tool_calls`` and ``tool`` turns, and each completion is parsed in the tool-call format that template
teaches (:func:`reinforge.agents.formats.format_for`). A choice with calls answers as OpenAI's API does:
``message.tool_calls`` (ids ``call_...``, ``arguments`` a JSON string), ``content`` the text outside the
calls (or null) and ``finish_reason`` ``"tool_calls"``. ``tool_choice="required"`` or a named function
starts the reply with the format's call prefix, so the model writes a call; ``"none"`` renders no tools.

>>> check_tool_choice("auto", ["calc"]), check_tool_choice({"type": "function", "function": {"name": "calc"}}, ["calc"])
('auto', 'calc')
>>> template_message({"role": "assistant", "content": None, "tool_calls": [
...     {"id": "call_1", "type": "function", "function": {"name": "calc", "arguments": '{"x": 1}'}}]})["tool_calls"]
[{'id': 'call_1', 'type': 'function', 'function': {'name': 'calc', 'arguments': {'x': 1}}}]
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from reinforge.agents.calls import ParsedTurn, ToolCall
from reinforge.serve.errors import APIError

NONE, AUTO, REQUIRED = "none", "auto", "required"
_NAME, _ARGS = "__rf_name__", "__rf_args__"  # placeholders that locate the call prefix in a rendered call


def check_tools(tools: list[dict[str, Any]] | None) -> list[str]:
    """The names of OpenAI ``ChatCompletionTool`` objects; 400 naming ``tools[i]`` when one is malformed."""
    names: list[str] = []
    for i, t in enumerate(tools or []):
        fn = t.get("function") if isinstance(t, dict) else None
        if t.get("type", "function") != "function" or not isinstance(fn, dict):
            raise APIError(400, f"tools[{i}]: must be {{'type': 'function', 'function': {{...}}}}", "tools")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise APIError(400, f"tools[{i}].function.name: required, a non-empty string", "tools")
        if not isinstance(fn.get("parameters", {}), dict):
            raise APIError(400, f"tools[{i}].function.parameters: must be a JSON schema object", "tools")
        names.append(name)
    return names


def check_tool_choice(choice: str | dict[str, Any] | None, names: list[str]) -> str:
    """``none``, ``auto``, ``required`` or the one function's name the reply must call."""
    if choice is None:
        return AUTO if names else NONE
    if not names:
        raise APIError(
            400, "tool_choice: only allowed when tools are given; add tools or drop it", "tool_choice"
        )
    if isinstance(choice, str):
        if choice not in (NONE, AUTO, REQUIRED):
            raise APIError(
                400, f"tool_choice {choice!r}: must be none, auto, required or a function", "tool_choice"
            )
        return choice
    fn = choice.get("function") if choice.get("type") == "function" else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if name not in names:
        raise APIError(
            400,
            f"tool_choice: names function {name!r}, which is not one of tools ({', '.join(names)})",
            "tool_choice",
        )
    return name


def _text(content: Any) -> str:
    """A message's content as text: a string, null, or a list of text parts."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def template_message(m: dict[str, Any], where: str = "messages[0]") -> dict[str, Any]:
    """One OpenAI message as chat templates take it: text content; ``tool_calls`` with parsed arguments."""
    out: dict[str, Any] = {"role": m.get("role", "user"), "content": _text(m.get("content"))}
    calls = []
    raw = m.get("tool_calls") or []
    for j, c in enumerate(raw if isinstance(raw, list) else [raw]):
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise APIError(
                400, f"{where}.tool_calls[{j}]: must be {{'function': {{'name', 'arguments'}}}}", "messages"
            )
        args = fn.get("arguments", "{}")
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except json.JSONDecodeError:
                raise APIError(
                    400, f"{where}.tool_calls[{j}].function.arguments: not JSON", "messages"
                ) from None
        calls.append(
            {"id": c.get("id"), "type": "function", "function": {"name": fn.get("name"), "arguments": args}}
        )
    if calls:
        out["tool_calls"] = calls
    for key in ("tool_call_id", "name"):
        if m.get(key) is not None:
            out[key] = m[key]
    return out


def call_prefix(fmt, choice: str) -> str:
    """The text a reply must start with so that it is a call (of ``choice``'s function when it names one);
    '' for none/auto, or when the format's rendering does not show where the name or arguments go."""
    if choice in (NONE, AUTO):
        return ""
    named = choice != REQUIRED
    text = fmt.render(ParsedTurn("", [ToolCall(choice if named else _NAME, {_ARGS: 1}, "call_0")], []))
    cut = text.find(f'{{"{_ARGS}"' if named else f'"{_NAME}"')
    return text[:cut] if cut > 0 else ""


def reply_message(fmt, text: str, finish: str, parallel: bool = True) -> tuple[dict[str, Any], str]:
    """(OpenAI's assistant message, finish_reason) for one completion. Calls become ``tool_calls``; a reply
    whose calls are all malformed is returned as plain text, as the model wrote it."""
    turn = fmt.parse(text)
    if not turn.calls:
        return {"role": "assistant", "content": text}, finish
    calls = turn.calls[:1] if not parallel else turn.calls
    tool_calls = [
        {**c.to_openai(), "id": f"call_{uuid.uuid4().hex[:24]}"} for c in calls
    ]  # unique across requests: clients key tool results by id
    message = {"role": "assistant", "content": turn.content.strip() or None, "tool_calls": tool_calls}
    return message, "tool_calls" if finish == "stop" else finish
