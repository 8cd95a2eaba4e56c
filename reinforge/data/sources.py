"""Datasets besides JSONL: Parquet, CSV, a ``datasets`` directory, a Hugging Face hub id; column mapping.

Every data path (``train_file``, ``validation_file``, ``reinforge grade DATA``...) is read by
:func:`reinforge.data.jsonl.iter_jsonl`, which hands anything that is not a JSONL file to
:func:`iter_rows` here. A source is::

    PATH[?split=NAME&config=NAME&columns=OLD:NEW,OLD:NEW]

- ``*.parquet``: read with pyarrow; ``*.csv``: a header row, then one row per line (a cell holding a JSON
  array or object, such as ``messages``, is decoded; an empty cell is an absent field);
- a directory written by ``Dataset.save_to_disk`` (``load_from_disk``; a ``DatasetDict``'s ``split``,
  default ``train``); a directory of data files (``load_dataset(DIR, split=split)``, as the hub lays out);
- anything else that is not an existing file: a hub id for ``datasets.load_dataset(id, config, split)``
  (needs the network, or the datasets cache);
- ``columns=OLD:NEW``: rename the source's columns to the names reinforge reads (``columns=conversation:messages``).

Rows come back numbered from 1, so an error reads ``data.parquet:3: ...`` for the third row, as a JSONL
file's names its line. Keys whose value is null are dropped (Parquet and ``datasets`` fill absent struct
fields with nulls; a JSONL row would not have them).

>>> parse_source("train.parquet?columns=conversation:messages,label:answer")
('train.parquet', {'columns': {'conversation': 'messages', 'label': 'answer'}})
>>> is_table_source("train.jsonl"), is_table_source("train.parquet")
(False, True)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from reinforge.errors import DataError

OPTIONS = ("split", "config", "columns")
DATA_FILES = (".jsonl", ".json", ".parquet", ".csv")  # a folder of these is one load_dataset dataset


def parse_source(spec: str | Path) -> tuple[str, dict[str, Any]]:
    """``PATH?k=v&...`` -> (PATH, options); a path that exists as written has no options."""
    text = str(spec)
    if "?" not in text or Path(text).exists():
        return text, {}
    path, query = text.split("?", 1)
    options: dict[str, Any] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in OPTIONS:
            raise DataError(f"{text}: unknown option {key!r}; use {', '.join(OPTIONS)}")
        options[key] = values[-1]
    if "columns" in options:
        pairs = [p.split(":", 1) for p in options["columns"].split(",") if p]
        if any(len(p) != 2 or not all(p) for p in pairs):
            raise DataError(f"{text}: columns={options['columns']!r}: give OLD:NEW pairs separated by commas")
        options["columns"] = dict(pairs)
    return path, options


def is_table_source(path: str) -> bool:
    """True for Parquet, CSV, a directory or a path that is not a file (a hub id); False for a file of
    any other kind, read as JSONL (a missing ``.jsonl``/``.json`` path too: its error names it)."""
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return False
    return p.is_dir() or p.suffix.lower() in (".parquet", ".csv") or not p.exists()


def iter_rows(path: str, options: dict[str, Any], spec: str) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet/CSV file, a ``datasets`` directory or a hub id (``spec`` names it in errors)."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".csv") and not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        yield from _from_disk(p, options.get("split", "train"), spec)
    elif p.suffix.lower() == ".parquet":
        yield from _parquet(p)
    elif p.suffix.lower() == ".csv":
        yield from _csv(p)
    else:
        yield from _hub(path, options, spec)


def map_columns(
    rows: Iterator[tuple[int, dict[str, Any]]], columns: dict[str, str], spec: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rename ``columns`` (old -> new) in every row; a row without an old column is an error naming it."""
    for number, row in rows:
        missing = [old for old in columns if old not in row]
        if missing:
            raise DataError(
                f"{spec}:{number}: no column {missing[0]!r} to rename (columns: {', '.join(row)})"
            )
        yield number, {columns.get(k, k): v for k, v in row.items()}


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def _parquet(p: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(p).to_pylist()
    except Exception as e:  # pyarrow's errors name the problem, not the file
        raise DataError(f"{p}: not a readable Parquet file ({e})") from None


def _csv(p: Path) -> Iterator[dict]:
    with p.open(newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            yield {k: _cell(v) for k, v in row.items()}


def _cell(text: str | None) -> Any:
    """A CSV cell: JSON arrays and objects decoded (``messages``, ``tools``), an empty cell absent (None),
    anything else kept as text."""
    if not text:
        return None
    if text.lstrip()[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _from_disk(p: Path, split: str, spec: str):
    from datasets import DatasetDict, load_from_disk

    if not any((p / name).exists() for name in ("state.json", "dataset_dict.json")):
        if any(f.suffix.lower() in DATA_FILES for f in p.rglob("*") if f.is_file()):
            return _hub(str(p), {"split": split}, spec)  # a folder of data files: load_dataset reads it
    try:
        data = load_from_disk(str(p))
    except FileNotFoundError:
        raise DataError(
            f"{spec}: not a file (a directory?) nor a saved dataset (Dataset.save_to_disk); give a data file"
        ) from None
    if isinstance(data, DatasetDict):
        if split not in data:
            raise DataError(f"{spec}: no split {split!r} (splits: {', '.join(data)}); add ?split=NAME")
        data = data[split]
    return iter(data)


def _hub(name: str, options: dict, spec: str):
    from datasets import load_dataset

    try:
        return iter(load_dataset(name, options.get("config"), split=options.get("split", "train")))
    except Exception as e:  # no such file, no network, no such dataset: one line
        raise DataError(
            f"{spec}: not a data file here and not a loadable hub dataset "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
