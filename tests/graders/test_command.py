"""`reinforge grade`: rows in input order, summary on stderr, --validate exit codes."""

import json

from typer.testing import CliRunner

from reinforge.cli import app
from tests.graders.openai_examples import MULTI, STRING_CHECK


def invoke(*args):
    return CliRunner().invoke(app, ["grade", *map(str, args)])


def test_grade_writes_rows_in_order_with_summary(tmp_path):
    g, inp, out = tmp_path / "g.json", tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    g.write_text(json.dumps(STRING_CHECK))
    rows = [{"item": {"label": str(i % 3)}, "sample": {"output_text": str(i % 2)}} for i in range(50)]
    rows.append({"item": {"label": "x"}, "model_sample": "x"})
    rows.append({"item": {}, "model_sample": "x"})  # missing variable -> recorded zero
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = invoke("--grader", g, "--input", inp, "--output", out)
    assert res.exit_code == 0, res.output
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["reward"] for r in got[:50]] == [float(i % 3 == i % 2) for i in range(50)]
    assert got[50] == {"reward": 1.0, "sub_rewards": {}, "errors": {}}
    assert got[51]["errors"]["invalid_variable_error"] is True
    assert (
        "graded 52 rows" in res.stderr
        and "invalid_variable_error=1" in res.stderr
        and "grades/s" in res.stderr
    )


def test_multi_rows_carry_sub_rewards(tmp_path):
    g, inp, out = tmp_path / "g.json", tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    g.write_text(json.dumps(MULTI))
    tools = [{"function": {"name": "f", "arguments": "{}"}}]
    inp.write_text(
        json.dumps(
            {"item": {"name": "f", "arguments": "{ }"}, "sample": {"output_text": "", "output_tools": tools}}
        )
        + "\n"
    )
    assert invoke("--grader", g, "--input", inp, "--output", out).exit_code == 0
    assert json.loads(out.read_text()) == {
        "reward": 0.5,
        "sub_rewards": {"name": 1.0, "arguments": 0.0},
        "errors": {},
    }


def test_validate_exit_codes(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(MULTI))
    bad.write_text(json.dumps({**MULTI, "calculate_output": "name +* 2"}))
    ok = invoke("--validate", good)
    assert ok.exit_code == 0 and "valid multi grader" in ok.stderr
    res = invoke("--validate", bad)
    assert res.exit_code == 2 and "formula_parse_error" in res.stderr


def test_bad_input_row_names_file_and_line(tmp_path):
    g, inp = tmp_path / "g.json", tmp_path / "in.jsonl"
    g.write_text(json.dumps(STRING_CHECK))
    inp.write_text('{"item": {}, "model_sample": "a"}\n{"item": {}}\n')
    res = invoke("--grader", g, "--input", inp)
    assert res.exit_code == 2 and f"{inp}:2" in res.stderr


def test_a_long_input_shows_a_progress_bar(tmp_path):
    """More rows than one batch (CHUNK): a bar over the counted rows on stderr; a short input shows none."""
    from reinforge.graders.command import CHUNK

    g, inp = tmp_path / "g.json", tmp_path / "in.jsonl"
    g.write_text(json.dumps(STRING_CHECK))
    inp.write_text(json.dumps({"item": {"label": "1"}, "model_sample": "1"}) + "\n" * 2)  # a blank line too
    short = invoke("--grader", g, "--input", inp, "--output", tmp_path / "o.jsonl")
    inp.write_text((json.dumps({"item": {"label": "1"}, "model_sample": "1"}) + "\n") * (CHUNK + 4))
    long = invoke("--grader", g, "--input", inp, "--output", tmp_path / "o.jsonl")
    assert long.exit_code == 0, long.output
    assert f"{CHUNK + 4}/{CHUNK + 4}" in long.stderr and "reward 1.0000" in long.stderr
    assert "/1 " not in short.stderr and "graded 1 rows" in short.stderr
