"""Preference data: the three formats, expansion to pairs, and clear file:line errors for bad rows."""

from __future__ import annotations

import json

import pytest

from reinforge.data.preferences import load_preferences, to_pairs
from reinforge.errors import DataError


def write(tmp_path, rows, name="prefs.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


def test_pairs_rankings_and_thumbs(tmp_path):
    p = write(
        tmp_path,
        [
            {"prompt": "q1", "chosen": "good", "rejected": "bad", "margin": 2},
            {
                "prompt": [{"role": "user", "content": "q2"}],
                "responses": ["a", "b", "c"],
                "ranking": [1, 2, 0],
            },
            {"prompt": "q3", "response": "yes", "thumb": "up"},
            {"prompt": "q3", "response": "no", "thumb": "down"},
            {"prompt": "q3", "response": "meh", "label": False},
            {"prompt": "q4", "response": "lonely", "thumb": "up"},  # no down for q4: contributes nothing
        ],
    )
    rankings = load_preferences(p)
    assert [r.responses for r in rankings] == [
        ["good", "bad"],
        ["b", "c", "a"],
        ["yes", "no"],
        ["yes", "meh"],
    ]
    assert rankings[0].margin == 2.0 and rankings[0].prompt == [{"role": "user", "content": "q1"}]
    pairs = to_pairs(rankings)
    # a ranking of 3 gives 3 pairs, best first
    assert [(q.chosen, q.rejected) for q in pairs[1:4]] == [("b", "c"), ("b", "a"), ("c", "a")]
    assert len(pairs) == 6


def test_openai_dpo_rows_are_pairs(tmp_path):
    row = {
        "input": {"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "hello!"}],
        "non_preferred_output": [{"role": "assistant", "content": "go away"}],
    }
    [pair] = to_pairs(load_preferences(write(tmp_path, [row])))
    assert (pair.chosen, pair.rejected) == ("hello!", "go away") and pair.prompt[1]["content"] == "hi"
    bad = {**row, "non_preferred_output": [{"role": "user", "content": "x"}]}
    with pytest.raises(DataError, match=r":1: 'non_preferred_output' must end with an assistant message"):
        load_preferences(write(tmp_path, [bad], "bad.jsonl"))


@pytest.mark.parametrize(
    "row, message",
    [
        # a tie: the same text on both sides
        ({"prompt": "q", "chosen": "same", "rejected": "same"}, "a tie"),
        # empty responses
        ({"prompt": "q", "chosen": "  ", "rejected": "x"}, "'chosen' is empty"),
        ({"prompt": "q", "responses": ["a", ""], "ranking": [0, 1]}, "'responses[1]' is empty"),
        # ranking indices out of range, negative, or repeated
        (
            {"prompt": "q", "responses": ["a", "b"], "ranking": [0, 2]},
            "index 2 is out of range for 2 responses",
        ),
        ({"prompt": "q", "responses": ["a", "b"], "ranking": [-1, 0]}, "index -1 is out of range"),
        ({"prompt": "q", "responses": ["a", "b", "c"], "ranking": [0, 0, 1]}, "lists index 0 twice"),
        # duplicate responses inside one ranking
        ({"prompt": "q", "responses": ["a", "b", "a"], "ranking": [0, 1, 2]}, "are the same text"),
        # structure
        ({"prompt": "q", "responses": ["a"], "ranking": [0]}, "at least 2"),
        ({"chosen": "a", "rejected": "b"}, "no 'prompt'"),
        ({"prompt": "", "chosen": "a", "rejected": "b"}, "'prompt' is empty"),
        ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": -1}, "'margin' must be a number >= 0"),
        ({"prompt": "q", "response": "a", "thumb": "sideways"}, "thumbs rows need"),
        ({"prompt": "q", "text": "a"}, "not a preference row"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    p = write(tmp_path, [{"prompt": "ok", "chosen": "a", "rejected": "b"}, row])
    with pytest.raises(DataError) as e:
        load_preferences(p)
    assert f"{p}:2:" in str(e.value) and message in str(e.value)


def test_duplicate_rows_are_errors_unless_allowed(tmp_path):
    row = {"prompt": "q", "chosen": "a", "rejected": "b"}
    p = write(tmp_path, [row, {"prompt": "q2", "chosen": "a", "rejected": "b"}, row])
    with pytest.raises(DataError, match=r":3: duplicate of .*:1"):
        load_preferences(p)
    assert len(load_preferences(p, allow_duplicates=True)) == 3


def test_invalid_json_and_no_pairs(tmp_path):
    with pytest.raises(DataError, match=":1: invalid JSON"):
        load_preferences(write(tmp_path, ["{not json"]))
    with pytest.raises(DataError, match="no preference pairs"):
        load_preferences(write(tmp_path, [{"prompt": "q", "response": "a", "thumb": "up"}], "t.jsonl"))
