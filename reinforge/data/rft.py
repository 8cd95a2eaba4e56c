"""OpenAI-format RFT datasets: ``{"messages": [...], "tools": [...]?, <any reference fields>}`` per line.

Every row is checked up front; the first bad line fails with ``file:line: what is wrong``. ``tools`` is
OpenAI's ``ChatCompletionTool`` list (``{"type": "function", "function": {"name", "description"?,
"parameters"?, "strict"?}}``).

>>> tool_schema_problem({"type": "function", "function": {"name": "add two"}})
".function.name: 'add two' must match ^[a-zA-Z0-9_-]{1,64}$ (OpenAI's tool names)"
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from reinforge.data.jsonl import iter_jsonl
from reinforge.errors import DataError

ROLES = {"system", "developer", "user", "assistant", "tool"}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_FUNCTION_KEYS = {"name": str, "description": str, "parameters": dict, "strict": bool}


def tool_schema_problem(tool) -> str | None:
    """What is wrong with one ChatCompletionTool, as ``.key: rule`` (or ``: rule``), or None."""
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(tool.get("function"), dict)
    ):
        return ': must be {"type": "function", "function": {"name": ..., "parameters": {...}}}'
    fn = tool["function"]
    for key, kind in _FUNCTION_KEYS.items():
        if key in fn and not isinstance(fn[key], kind):
            return f".function.{key}: must be a {'JSON object' if kind is dict else kind.__name__}"
    name = fn.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        return f".function.name: {name!r} must match {TOOL_NAME.pattern} (OpenAI's tool names)"
    params = fn.get("parameters", {"type": "object"})
    if params.get("type", "object") != "object" or not isinstance(params.get("properties", {}), dict):
        return ".function.parameters: must be a JSON Schema of type 'object' with a 'properties' object"
    return None


def check_tools(tools, where: str) -> None:
    """A row's ``tools``: a list of ChatCompletionTools with unique names."""
    if not isinstance(tools, list):
        raise DataError(f'{where}: \'tools\' must be a list of {{"type": "function", "function": {{...}}}}')
    names = set()
    for i, tool in enumerate(tools):
        problem = tool_schema_problem(tool)
        if problem:
            raise DataError(f"{where}: tools[{i}]{problem}")
        name = tool["function"]["name"]
        if name in names:
            raise DataError(
                f"{where}: tools[{i}].function.name: {name!r} is given twice; names must be unique"
            )
        names.add(name)


def check_messages(messages, where: str, need_prompt: bool = True) -> None:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        if m.get("role") not in ROLES:
            raise DataError(f"{where}: messages[{i}].role {m.get('role')!r} is not one of {sorted(ROLES)}")
        content = m.get("content")
        if not isinstance(content, str | list) and not (m["role"] == "assistant" and m.get("tool_calls")):
            raise DataError(f"{where}: messages[{i}].content must be a string")
    if need_prompt and not any(m["role"] in ("user", "system", "developer") for m in messages):
        raise DataError(f"{where}: messages hold no user/system turn to prompt with")


def load_rft_rows(path: str | Path) -> list[dict]:
    """Read and validate an RFT JSONL file."""
    rows = []
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        if "messages" not in row:
            raise DataError(
                f"{where}: row has no 'messages' (RFT rows are {{\"messages\": [...], <reference fields>}})"
            )
        check_messages(row["messages"], where)
        if "tools" in row:
            check_tools(row["tools"], where)
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def split_rows(rows: list[dict], validation_split: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Shuffle with ``seed`` and hold out a fraction for validation."""
    if not 0 < validation_split < 1:
        raise DataError(f"validation_split {validation_split}: must be between 0 and 1")
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    n_val = max(1, round(len(rows) * validation_split))
    return [rows[i] for i in idx[n_val:]], [rows[i] for i in idx[:n_val]]
