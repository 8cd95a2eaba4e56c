"""Sentiment: write a one-line review of a subject. The RLHF demo's task, with a hidden *gold* preference.

Prompt ``review: movie``; a demonstration is ``the movie was good and dull.``: one to three adjectives
drawn evenly from positive and negative words, so a model warmed by SFT writes mixed reviews
(gold reward about 0.5).

The gold annotator (:func:`gold_reward`, never shown to the policy) likes positive reviews that stay
well formed: the score is the fraction of positive adjectives, minus penalties for a repeated
adjective, more than three adjectives, a missing subject, or text that breaks the
``the <subject> was <adjectives>.`` form. A reward model learned from a few hundred comparisons
picks up "positive words are good" but has never seen the degenerate texts a policy finds when it
optimises too hard, which is the over-optimisation the demo shows.

>>> gold_reward("the movie was good and fun.", "movie"), gold_reward("the movie was bad.", "movie")
(1.0, 0.0)
>>> gold_reward("the movie was good, good and fun.", "movie")  # repetition costs 0.3
0.7
"""

from __future__ import annotations

import random
import re

from reinforge.graders.base import CallableGrader

SUBJECTS = ["movie", "book", "cafe", "song", "hotel", "game", "park", "show", "meal", "play", "album", "city"]
POSITIVE = ["good", "great", "fun", "nice", "lovely", "superb", "charming", "brilliant"]
NEGATIVE = ["bad", "dull", "awful", "boring", "poor", "weak", "bland", "messy"]
FORM = re.compile(r"^the ([a-z]+) was ([a-z]+(?:, [a-z]+)*(?: and [a-z]+)?)\.$")


def gold_reward(text: str, subject: str) -> float:
    """The hidden annotator's score in [0, 1] (see the module docstring)."""
    words = re.findall(r"[a-z]+", text.lower())
    adjectives = [w for w in words if w in POSITIVE or w in NEGATIVE]
    if not adjectives:
        return 0.0
    score = sum(w in POSITIVE for w in adjectives) / len(adjectives)
    score -= 0.3 * (len(adjectives) - len(set(adjectives)))  # repeated adjectives
    score -= 0.2 * max(0, len(adjectives) - 3)  # rambling
    if subject not in words:
        score -= 0.3
    if not FORM.match(text.strip()):
        score -= 0.3
    return round(max(0.0, min(1.0, score)), 6)


def sentiment_gold(item: dict, sample: dict) -> float:
    return gold_reward(sample["output_text"], item["subject"])


def review(subject: str, adjectives: list[str]) -> str:
    if len(adjectives) == 1:
        body = adjectives[0]
    else:
        body = ", ".join(adjectives[:-1]) + " and " + adjectives[-1]
    return f"the {subject} was {body}."


class SentimentTask:
    """Rows: ``{"messages": [user "review: <subject>"], "subject", "answer"}``; ``answer`` is a mixed demonstration."""

    name = "sentiment"

    def __init__(self):
        self.grader = CallableGrader(sentiment_gold, name="gold_sentiment")

    def make_rows(self, n: int, seed: int = 0, split: str = "train") -> list[dict]:
        r = random.Random(f"{seed}-{split}")
        rows = []
        for _ in range(n):
            subject = r.choice(SUBJECTS)
            adjectives = r.sample(POSITIVE + NEGATIVE, r.randint(1, 3))
            rows.append(
                {
                    "messages": [{"role": "user", "content": f"review: {subject}"}],
                    "subject": subject,
                    "answer": review(subject, adjectives),
                }
            )
        return rows
