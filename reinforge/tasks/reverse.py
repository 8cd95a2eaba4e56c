"""Reverse a short word, ``"reverse: lemon"`` -> ``"nomel"``: a string answer, not a number.

The words are random lowercase strings of 3 to 6 letters (no word list to ship), so the model must
learn the transformation, not a vocabulary. Train and validation words are disjoint by construction
(a hash of the word picks its split), as in :mod:`reinforge.tasks.addition`.

The reward, :func:`reverse_reward`, gives partial credit: the normalised Levenshtein similarity
between the output and the reversed word, ``1 - edits / max(len)``. One letter wrong or dropped costs
one edit, so a nearly reversed word scores nearly 1 and an echo of the word scores little.

>>> reverse_reward({"answer": "nomel"}, {"output_text": "nomel"})
1.0
>>> reverse_reward({"answer": "nomel"}, {"output_text": "nome"})
0.8
>>> reverse_reward({"answer": "nomel"}, {"output_text": ""})
0.0
>>> ReverseTask().make_rows(1, seed=0)[0]["messages"][0]["content"].startswith("reverse: ")
True
"""

from __future__ import annotations

import hashlib
import random
import string

from rapidfuzz.distance import Levenshtein

from reinforge.graders.base import CallableGrader

PROMPT = "reverse: "


def reverse_reward(item: dict, sample: dict) -> float:
    """Levenshtein similarity of the output to the reference, in [0, 1]; an empty output scores 0."""
    out = sample["output_text"].strip()
    if not out:
        return 0.0
    return float(Levenshtein.normalized_similarity(out, str(item["answer"])))


def word_split(word: str) -> str:
    """~20% of words are held out, picked by a hash of the word."""
    return "validation" if hashlib.md5(word.encode()).digest()[0] < 51 else "train"


class ReverseTask:
    name = "reverse"

    def __init__(self, min_len: int = 3, max_len: int = 6):
        self.min_len, self.max_len = min_len, max_len
        self.grader = CallableGrader(reverse_reward, name="reverse_reward")

    def make_rows(self, n: int, seed: int = 0, split: str = "train") -> list[dict]:
        """``n`` distinct words of the split (there are ~3e8 words of 3-6 letters: never exhausted)."""
        r = random.Random(seed)
        words: dict[str, None] = {}  # insertion-ordered set
        while len(words) < n:  # rejection sampling: ~80% (train) or ~20% (validation) are kept
            w = "".join(r.choices(string.ascii_lowercase, k=r.randint(self.min_len, self.max_len)))
            if word_split(w) == split:
                words.setdefault(w)
        return [{"messages": [{"role": "user", "content": PROMPT + w}], "answer": w[::-1]} for w in words]
