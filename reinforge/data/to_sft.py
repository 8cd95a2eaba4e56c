"""RFT rows -> SFT rows: a reference field becomes the assistant turn that SFT learns to write.

An RFT row holds the prompt and reference fields for a grader; SFT needs the answer as an assistant turn.
``reinforge data to-sft IN.jsonl OUT.jsonl --field answer`` converts a file, and the SFT config's
``assistant_field: answer`` does the same on the fly. A string is used as it is, a number as its text,
an object or list as compact JSON; a missing or empty field fails with ``file:line``.

>>> row = {"messages": [{"role": "user", "content": "word"}], "answer": "drow"}
>>> to_sft_row(row, "answer", "data.jsonl:1")["messages"][-1]
{'role': 'assistant', 'content': 'drow'}
"""

from __future__ import annotations

import json
from pathlib import Path

from reinforge.data.jsonl import iter_jsonl, write_jsonl
from reinforge.data.rft import check_messages
from reinforge.errors import DataError


def assistant_text(value, field: str, where: str) -> str:
    """The assistant turn's text for a reference value (see the module docstring for the rules)."""
    if isinstance(value, bool) or value is None:
        raise DataError(
            f"{where}: {field!r} is {json.dumps(value)}; it must be a string, number, object or list"
        )
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not isinstance(value, str):
        raise DataError(f"{where}: {field!r} must be a string, number, object or list")
    if not value.strip():
        raise DataError(f"{where}: {field!r} is empty; SFT would learn to answer nothing")
    return value


def to_sft_row(row: dict, field: str, where: str) -> dict:
    """One RFT row -> ``{"messages": [..., {"role": "assistant", "content": row[field]}]}`` (+ its tools)."""
    if "messages" not in row:
        raise DataError(
            f"{where}: row has no 'messages' (RFT rows are {{\"messages\": [...], {field!r}: ...}})"
        )
    messages = row["messages"]
    check_messages(messages, where)
    if field not in row:
        fields = ", ".join(repr(k) for k in row if k not in ("messages", "tools")) or "none"
        raise DataError(
            f"{where}: no field {field!r} to make the assistant turn from (reference fields: {fields})"
        )
    if messages[-1].get("role") == "assistant":
        raise DataError(
            f"{where}: the messages already end with an assistant turn; SFT can use this row as it is"
        )
    out = {
        "messages": [*messages, {"role": "assistant", "content": assistant_text(row[field], field, where)}]
    }
    if "tools" in row:
        out["tools"] = row["tools"]
    return out


def read_as_sft(path: str | Path, field: str) -> list[dict]:
    """Every row of an RFT JSONL file as an SFT row; the first bad line fails with ``file:line``."""
    rows = [to_sft_row(row, field, f"{path}:{lineno}") for lineno, row in iter_jsonl(path)]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def convert_file(src: str | Path, dst: str | Path, field: str) -> int:
    """Write ``src``'s rows as SFT rows to ``dst`` (nothing is written if a row is bad); returns the count."""
    if Path(src).resolve() == Path(dst).resolve():
        raise DataError(f"{dst}: the output would overwrite the input; write to another file")
    rows = read_as_sft(src, field)
    write_jsonl(dst, rows)
    return len(rows)
