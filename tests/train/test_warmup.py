"""``tiny:TASK:SIZE[:key=N]`` ids: what parses, one clear ConfigError for everything else, and where they
resolve (train.warmup builds them; models.loading takes directories and hub ids only)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.errors import ConfigError, ReinforgeError
from reinforge.models.loading import resolve_model_path
from reinforge.models.tiny import build_tokenizer
from reinforge.train.warmup import parse_tiny_id, resolve_model


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("tiny:addition:1m", {"task": "addition", "size": "1m"}),  # the README's model
        ("tiny:addition:1m:sft_steps=0", {"task": "addition", "size": "1m", "sft_steps": 0}),  # untrained
        (
            "tiny:sentiment:4m:seed=3:train_examples=64",
            {"task": "sentiment", "size": "4m", "seed": 3, "train_examples": 64},
        ),
        ("tiny:blank:11m", {"task": "blank", "size": "11m", "sft_steps": 0}),  # a base for your own task
        ("runs/sft/final", None),  # not a tiny id: a path or hub id, for the loader
    ],
)
def test_valid_tiny_ids(name, kwargs):
    assert parse_tiny_id(name) == kwargs


@pytest.mark.parametrize(
    "name, what",
    [
        ("tiny:addition:1m:steps=0", "unknown option 'steps=0'"),  # was a TypeError deep in tiny_model
        ("tiny:addition:2m", "unknown size '2m'"),  # was a raw KeyError traceback
        ("tiny:additon:1m", "unknown task 'additon'"),
        ("tiny:addition", "give a task and a size"),
        ("tiny:addition:1m:seed=x", "option seed='x' must be a whole number >= 0"),
        ("tiny:addition:1m:sft_steps", "unknown option 'sft_steps'"),  # no '=N'
        ("tiny:blank:1m:sft_steps=50", "blank has no data to warm up on"),
    ],
)
def test_bad_tiny_ids_name_the_part_and_every_valid_choice(name, what):
    with pytest.raises(ConfigError) as e:
        parse_tiny_id(name)
    msg = str(e.value)
    assert msg.startswith(f"model {name!r}: {what}") and "; tiny ids are tiny:TASK:SIZE[:" in msg, msg
    for valid in ("blank", "addition", "reversed_addition", "1m", "4m", "11m", "30m", "seed=N"):
        assert valid in msg
    assert "\n" not in msg


def test_bad_tiny_id_on_the_command_line_is_one_line_exit_2(tmp_path):
    data = tmp_path / "valid.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "1+2"}], "answer": "3"}\n')
    res = CliRunner().invoke(
        app, ["eval", "--model", "tiny:addition:2m", "--data", str(data), "--task", "addition"]
    )
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().startswith("error: model 'tiny:addition:2m': unknown size '2m';"), res.stderr
    assert "Traceback" not in res.output


def test_blank_model_loads_untrained_with_the_tiny_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("REINFORGE_CACHE", str(tmp_path))
    path = resolve_model("tiny:blank:1m")
    assert path.startswith(str(tmp_path)) and "blank-1m" in path
    # the tokenizer covers printable ASCII one character per token, so any text task fits
    tok = build_tokenizer()
    text = "Hello, World! {x: [1, 2]} ~`|\\"
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text) and tok.unk_token_id not in ids and tok.decode(ids) == text


def test_models_loading_refuses_an_unresolved_tiny_id_and_names_the_resolver():
    # models/ sits below tasks/ and train/, so it cannot build tiny models itself: it says who does
    with pytest.raises(ReinforgeError, match="reinforge.train.warmup.load_model"):
        resolve_model_path("tiny:addition:1m")


def test_other_ids_resolve_to_themselves(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("someorg/some-model") == "someorg/some-model"
