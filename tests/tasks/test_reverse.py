"""The reverse task: its generator (disjoint splits, seeded, string answers) and its partial-credit grader."""

from __future__ import annotations

import pytest

from reinforge.tasks import get_task
from reinforge.tasks.reverse import PROMPT, reverse_reward, word_split


@pytest.mark.parametrize(
    "output, answer, reward",
    [
        ("nomel", "nomel", 1.0),  # exact
        (" nomel\n", "nomel", 1.0),  # surrounding whitespace is not the model's answer
        ("nomeX", "nomel", 0.8),  # one letter wrong: one edit of five
        ("nome", "nomel", 0.8),  # one letter dropped: still one edit, not every later letter lost
        ("xnomel", "nomel", 5 / 6),  # one letter inserted: one edit over the longer length
        ("lemon", "nomel", 0.2),  # the word echoed, not reversed: only the middle letter is in place
        ("", "nomel", 0.0),  # no answer
        ("zzzzz", "nomel", 0.0),  # nothing right
    ],
)
def test_reward_gives_partial_credit(output, answer, reward):
    assert reverse_reward({"answer": answer}, {"output_text": output}) == pytest.approx(reward)


def test_rows_are_words_reversed_seeded_and_split():
    task = get_task("reverse")
    train = task.make_rows(300, seed=0, split="train")
    val = task.make_rows(100, seed=0, split="validation")
    assert train == task.make_rows(300, seed=0, split="train")  # seeded
    assert train != task.make_rows(300, seed=1, split="train")
    words = {r["messages"][0]["content"].removeprefix(PROMPT) for r in train}
    held_out = {r["messages"][0]["content"].removeprefix(PROMPT) for r in val}
    assert len(words) == 300 and len(held_out) == 100  # distinct words
    assert not words & held_out  # the validation words are never trained on
    assert all(word_split(w) == "validation" for w in held_out)
    for r in train + val:
        word = r["messages"][0]["content"].removeprefix(PROMPT)
        assert r["answer"] == word[::-1] and 3 <= len(word) <= 6 and word.isalpha() and word.islower()
    row = train[0]  # the task's grader is the partial-credit reward
    assert task.grader.grade(row, {"output_text": row["answer"]}).reward == 1.0


def test_tiny_id_names_the_task():
    from reinforge.train.warmup import parse_tiny_id

    assert parse_tiny_id("tiny:reverse:1m:sft_steps=5") == {"task": "reverse", "size": "1m", "sft_steps": 5}
