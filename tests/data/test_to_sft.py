"""RFT rows -> SFT rows (`reinforge data to-sft`, SFT's ``assistant_field``): good rows, and bad ones by file:line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.data.to_sft import convert_file, read_as_sft
from reinforge.errors import DataError
from reinforge.train.sft_trainer import SFTConfig, load_sft_rows

USER = [{"role": "user", "content": "stone"}]


def write(path, *rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    "value, content",
    [
        ("enost", "enost"),  # a string as it is
        (42, "42"),  # a number as its text
        (1.5, "1.5"),
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'),  # structured output: compact JSON
    ],
)
def test_reference_value_becomes_the_assistant_turn(tmp_path, value, content):
    src = write(tmp_path / "rft.jsonl", {"messages": USER, "answer": value, "tools": []})
    n = convert_file(src, tmp_path / "sft.jsonl", "answer")
    out = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert n == 1
    assert out == [{"messages": [*USER, {"role": "assistant", "content": content}], "tools": []}]


@pytest.mark.parametrize(
    "bad_row, what",
    [
        ({"messages": USER, "answr": "x"}, "no field 'answer' to make the assistant turn from (reference fields: 'answr')"),
        ({"messages": USER, "answer": "  "}, "'answer' is empty"),
        ({"messages": USER, "answer": None}, "'answer' is null; it must be a string, number, object or list"),
        ({"messages": USER, "answer": True}, "'answer' is true"),
        ({"messages": [*USER, {"role": "assistant", "content": "x"}], "answer": "x"}, "already end with an assistant turn"),
        ({"messages": [], "answer": "x"}, "'messages' must be a non-empty list"),
        ({"prompt": "stone", "answer": "x"}, "row has no 'messages'"),
        ('{"messages": [', "invalid JSON"),
    ],
)  # fmt: skip
def test_bad_row_names_file_and_line_and_nothing_is_written(tmp_path, bad_row, what):
    src = write(tmp_path / "rft.jsonl", {"messages": USER, "answer": "enots"}, "", bad_row)
    with pytest.raises(DataError) as e:
        convert_file(src, tmp_path / "sft.jsonl", "answer")
    assert str(e.value).startswith(f"{src}:3: ") and what in str(e.value), str(e.value)
    assert not (tmp_path / "sft.jsonl").exists()


def test_cli_converts_and_reports_bad_rows_in_one_line(tmp_path):
    src = write(tmp_path / "rft.jsonl", {"messages": USER, "word": "enots"})
    ok = CliRunner().invoke(app, ["data", "to-sft", src, str(tmp_path / "sft.jsonl"), "--field", "word"])
    assert ok.exit_code == 0, ok.output
    assert read_as_sft(src, "word")[0]["messages"][-1]["content"] == "enots"
    assert "wrote 1 SFT rows" in ok.stderr
    bad = CliRunner().invoke(app, ["data", "to-sft", src, str(tmp_path / "out.jsonl")])  # --field answer
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert (
        bad.stderr.strip()
        == f"error: {src}:1: no field 'answer' to make the assistant turn from (reference fields: 'word')"
    )


def test_sft_assistant_field_reads_rft_rows_and_the_error_without_it_says_how(tmp_path):
    train = write(tmp_path / "train.jsonl", *[{"messages": USER, "answer": "enots"}] * 4)
    valid = write(tmp_path / "valid.jsonl", {"messages": USER, "answer": "enots"})
    cfg = SFTConfig(train_file=train, validation_file=valid, assistant_field="answer")
    rows, val = load_sft_rows(cfg)
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "enots"} and len(rows) == 4
    assert val[0]["messages"][-1]["content"] == "enots"
    with pytest.raises(
        DataError, match="row 1 has no assistant turn to learn from; for RFT rows set assistant_field"
    ):
        load_sft_rows(SFTConfig(train_file=train, validation_file=valid))
