"""Every data path takes JSONL, Parquet, CSV, a saved `datasets` directory or a folder load_dataset reads,
with column mapping; errors still name the row; a Parquet and a load_from_disk dataset train."""

from __future__ import annotations

import csv
import json

import pytest
from datasets import Dataset, DatasetDict

from reinforge.data.jsonl import read_jsonl
from reinforge.data.rft import load_rft_rows
from reinforge.errors import DataError
from reinforge.train.grpo import train_grpo
from tests.train.test_grpo import sevens, small_cfg

ROWS = [
    {"messages": [{"role": "user", "content": f"{a}+{a}"}], "answer": str(2 * a), "n": a}
    for a in range(10, 18)
]


def write(kind: str, tmp_path, rows=ROWS) -> str:
    """``rows`` saved as ``kind``; returns the data path a config would hold."""
    if kind == "jsonl":
        (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / "d.jsonl")
    if kind == "parquet":
        Dataset.from_list(rows).to_parquet(tmp_path / "d.parquet")
        return str(tmp_path / "d.parquet")
    if kind == "csv":
        with (tmp_path / "d.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            cell = {str: lambda v: v, type(None): lambda v: ""}  # an empty cell: no value
            w.writerows({k: cell.get(type(v), json.dumps)(v) for k, v in r.items()} for r in rows)
        return str(tmp_path / "d.csv")
    if kind == "save_to_disk":
        Dataset.from_list(rows).save_to_disk(tmp_path / "ds")
        return str(tmp_path / "ds")
    if kind == "dataset_dict":  # a DatasetDict: the split is chosen with ?split=
        DatasetDict({"train": Dataset.from_list(rows[:2]), "test": Dataset.from_list(rows)}).save_to_disk(
            tmp_path / "dd"
        )
        return str(tmp_path / "dd") + "?split=test"
    if kind == "load_dataset":  # a folder laid out as on the hub: datasets.load_dataset reads it
        (tmp_path / "hub" / "data").mkdir(parents=True)
        Dataset.from_list(rows).to_parquet(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet")
        return str(tmp_path / "hub")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "csv", "save_to_disk", "dataset_dict", "load_dataset"])
def test_every_source_reads_the_same_rows(kind, tmp_path):
    rows = read_jsonl(write(kind, tmp_path))
    if kind == "csv":  # CSV cells are text; JSON arrays and objects are decoded
        rows = [{**r, "n": int(r["n"])} for r in rows]
    assert rows == ROWS


def test_columns_are_mapped_and_nulls_of_absent_fields_dropped(tmp_path):
    rows = [{"conversation": r["messages"], "label": r["answer"]} for r in ROWS]
    rows[0]["conversation"] = [{**rows[0]["conversation"][0], "name": "ann"}]  # others get name: null
    path = write("parquet", tmp_path, rows) + "?columns=conversation:messages,label:answer"
    loaded = load_rft_rows(path)
    assert loaded[1] == {"messages": ROWS[1]["messages"], "answer": ROWS[1]["answer"]}
    assert loaded[0]["messages"][0]["name"] == "ann"
    jsonl = write("jsonl", tmp_path, rows) + "?columns=conversation:messages,label:answer"
    assert load_rft_rows(jsonl)[1] == loaded[1]  # JSONL maps its columns too


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("parquet", "d.parquet:3: row has no 'messages'"),  # the third row, as a JSONL file's third line
        ("save_to_disk", "ds:3: row has no 'messages'"),
        ("csv", "d.csv:3: row has no 'messages'"),
    ],
)
def test_errors_name_the_row(kind, tmp_path, needle):
    rows = [{"messages": r["messages"], "answer": r["answer"]} for r in ROWS]
    rows[2] = {"messages": None, "answer": "x"}  # a null column: the row has no messages
    with pytest.raises(DataError, match=needle):
        load_rft_rows(write(kind, tmp_path, rows))


@pytest.mark.parametrize(
    "path, needle",
    [
        ("{d}/none.parquet", "none.parquet: file not found"),
        ("{d}/d.parquet?colums=a:b", "unknown option 'colums'; use split, config, columns"),
        ("{d}/d.parquet?columns=a", "columns='a': give OLD:NEW pairs"),
        ("{d}/d.parquet?columns=nope:messages", "d.parquet?columns=nope:messages:1: no column 'nope'"),
        ("{d}/dd?split=validation", "no split 'validation' (splits: train, test)"),
        ("{d}/empty", "not a file (a directory?) nor a saved dataset"),
        ("{d}/notes.txt", "notes.txt:1: invalid JSON"),  # a file of another kind is read as JSONL
    ],
)
def test_source_errors_are_one_line(path, needle, tmp_path):
    write("parquet", tmp_path)
    write("dataset_dict", tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=needle.replace("?", r"\?").replace("(", r"\(").replace(")", r"\)")):
        read_jsonl(path.format(d=tmp_path))


@pytest.mark.parametrize("kind", ["parquet", "save_to_disk"])
def test_rft_trains_on_a_parquet_file_and_a_saved_dataset(kind, tiny_addition_dir, tmp_path):
    out = tmp_path / "run"
    cfg = small_cfg(tiny_addition_dir, out, task=None, train_file=write(kind, tmp_path), steps=2)
    summary = train_grpo(cfg, reward_fn=sevens)
    assert summary["train_examples"] == len(ROWS) and summary["steps"] == 2
