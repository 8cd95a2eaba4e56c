"""OpenAI-format RFT datasets: ``{"messages": [...], <any reference fields>}`` per line.

Every row is checked up front; the first bad line fails with ``file:line: what is wrong``.
"""

from __future__ import annotations

import random
from pathlib import Path

from reinforge.data.jsonl import iter_jsonl
from reinforge.errors import DataError

ROLES = {"system", "developer", "user", "assistant", "tool"}


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
