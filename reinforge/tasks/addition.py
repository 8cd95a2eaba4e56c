"""Two-digit addition, ``"37+48"`` -> ``"85"``: verifiable, tiny-model sized, with a dense reward.

Train and validation prompts are disjoint by construction (a hash of the operands picks the split),
so a validation score measures generalisation, not memory.

The reward, :func:`digit_reward`, is the fraction of answer digits right, aligned from the ones
place, over the longer of the two lengths: 1.0 for the exact answer, partial credit otherwise.

>>> digit_reward("85", "85"), digit_reward("84", "85"), digit_reward("x", "85")
(1.0, 0.5, 0.0)
"""

from __future__ import annotations

import hashlib
import random

from reinforge.graders.base import CallableGrader


def digit_reward(output: str, answer: str, from_left: bool = False) -> float:
    out, ans = output.strip(), str(answer)
    if not out:
        return 0.0
    width = max(len(out), len(ans))
    pairs = zip(out, ans) if from_left else zip(reversed(out), reversed(ans))
    return sum(a == b for a, b in pairs) / width


def addition_reward(item: dict, sample: dict) -> float:
    return digit_reward(sample["output_text"], item["answer"])


def reversed_addition_reward(item: dict, sample: dict) -> float:
    return digit_reward(sample["output_text"], item["answer"], from_left=True)


def exact_match(item: dict, sample: dict) -> float:
    return float(sample["output_text"].strip() == str(item["answer"]))


def split_of(a: int, b: int) -> str:
    """~20% of operand pairs are held out, picked by a hash so no digit pattern leaks into the split."""
    return "validation" if hashlib.md5(f"{a}+{b}".encode()).digest()[0] < 51 else "train"


class AdditionTask:
    name = "addition"
    reverse = False  # write the sum ones-digit first (ReversedAdditionTask)

    def __init__(self, low: int = 10, high: int = 99):
        self.low, self.high = low, high
        fn = reversed_addition_reward if self.reverse else addition_reward
        self.grader = CallableGrader(fn, name="digit_reward")

    def pairs(self, split: str) -> list[tuple[int, int]]:
        rng = range(self.low, self.high + 1)
        return [(a, b) for a in rng for b in rng if split_of(a, b) == split]

    def make_rows(self, n: int, seed: int = 0, split: str = "train") -> list[dict]:
        pool = self.pairs(split)
        r = random.Random(seed)
        picks = r.sample(pool, n) if n <= len(pool) else [r.choice(pool) for _ in range(n)]
        if self.reverse:
            return [
                {"messages": [{"role": "user", "content": f"{a}+{b}"}], "answer": str(a + b)[::-1]}
                for a, b in picks
            ]
        return [
            {"messages": [{"role": "user", "content": f"{a}+{b}"}], "answer": str(a + b)} for a, b in picks
        ]


class ReversedAdditionTask(AdditionTask):
    """The sum written ones-digit first (``37+48`` -> ``58``): each digit then depends only on digits
    already written and the carry, the order in which a left-to-right model can compute it."""

    name = "reversed_addition"
    reverse = True
