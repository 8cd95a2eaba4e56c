"""JSONL reading with errors that name ``file:line``; nothing is silently dropped. Every data path is read
here: Parquet, CSV, ``datasets`` directories, hub ids and column mapping (``data/sources.py``) come back
the same way, as ``(row number, row)``.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "x.jsonl")
>>> _ = open(p, "w").write('{"a": 1}\\n\\n{"a": 2}\\n')
>>> [r["a"] for r in read_jsonl(p)]
[1, 2]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from reinforge.data.sources import drop_nulls, is_table_source, iter_rows, map_columns, parse_source
from reinforge.errors import DataError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)``; blank lines are skipped, anything else must be a JSON object.
    ``path`` may name another source and map columns (``data/sources.py``): a table's rows are numbered
    from 1."""
    source, options = parse_source(path)
    columns = options.get("columns", {})
    if not is_table_source(source):
        yield from map_columns(_jsonl_lines(Path(source)), columns, str(path))
        return
    rows = map_columns(enumerate(iter_rows(source, options, str(path)), 1), columns, str(path))
    yield from ((number, drop_nulls(row)) for number, row in rows)


def _jsonl_lines(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a file (a directory?); give a JSONL file")
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{p}:{lineno}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                    "save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{p}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path)]


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write atomically: a temp file renamed into place, so a crash never leaves half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(p)
