"""Validate an uploaded ``fine-tune`` file: every line, one format, the first bad line named.

Formats (decided by the first row; every row must match it):
``chat``        ``{"messages": [...], <reference fields>}`` — RFT rows, and SFT rows when they hold an assistant turn
``preference``  ``{"prompt", "chosen", "rejected"}`` or ``{"prompt", "responses", "ranking"}`` (reinforge)
``dpo``         ``{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}`` (OpenAI)

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "t.jsonl")
>>> _ = open(p, "w").write('{"messages": [{"role": "user", "content": "1+1"}], "answer": "2"}\\n')
>>> validate_upload(p, "train.jsonl")
('chat', 1)
"""

from __future__ import annotations

from pathlib import Path

from reinforge.data.jsonl import iter_jsonl
from reinforge.data.rft import check_messages, check_tools
from reinforge.errors import DataError


def row_format(row: dict) -> str | None:
    if "messages" in row:
        return "chat"
    if "prompt" in row and ("chosen" in row or "responses" in row):
        return "preference"
    if "input" in row and "preferred_output" in row:
        return "dpo"
    return None


def check_row(row: dict, fmt: str, where: str) -> None:
    if fmt == "chat":
        check_messages(row.get("messages"), where)
        if "tools" in row:  # Agent RFT rows: OpenAI ChatCompletionTools, checked as the trainer will
            check_tools(row["tools"], where)
    elif fmt == "preference":
        if "chosen" in row:
            for k in ("chosen", "rejected"):
                if not isinstance(row.get(k), str | list):
                    raise DataError(f"{where}: '{k}' must be a string (or a list of messages)")
        else:
            resp, ranking = row.get("responses"), row.get("ranking")
            if not isinstance(resp, list) or len(resp) < 2:
                raise DataError(f"{where}: 'responses' must be a list of at least two responses")
            if not isinstance(ranking, list) or sorted(ranking) != list(range(len(resp))):
                raise DataError(
                    f"{where}: 'ranking' must be a permutation of 0..{len(resp) - 1} (best first)"
                )
    else:
        check_messages((row.get("input") or {}).get("messages"), where)
        for k in ("preferred_output", "non_preferred_output"):
            check_messages(row.get(k), where + f" ({k})", need_prompt=False)


def validate_upload(path: str | Path, filename: str) -> tuple[str, int]:
    """Return ``(format, n_rows)``; raise DataError ``filename:line: what is wrong`` on the first bad line."""
    fmt, n = None, 0
    try:
        for lineno, row in iter_jsonl(path):
            where = f"{filename}:{lineno}"
            this = row_format(row)
            if this is None:
                raise DataError(
                    f"{where}: unrecognised row; expected 'messages' (RFT/SFT), 'prompt'+'chosen'/"
                    "'rejected' or 'prompt'+'responses'/'ranking' (preferences), or OpenAI DPO "
                    "'input'/'preferred_output'/'non_preferred_output'"
                )
            if fmt is None:
                fmt = this
            elif this != fmt:
                raise DataError(f"{where}: a {this} row in a {fmt} file; one format per file")
            check_row(row, fmt, where)
            n += 1
    except UnicodeDecodeError:
        raise DataError(f"{filename}: not UTF-8 text (JSONL expected)") from None
    except DataError as e:
        raise DataError(str(e).replace(str(path), filename)) from None
    if fmt is None:
        raise DataError(f"{filename}: no rows")
    return fmt, n
