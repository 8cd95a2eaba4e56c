"""Grades per second of the graders on this machine (``python benchmarks/bench_graders.py``).

Targets (2 CPU cores): string_check 200,000/s, rouge/bleu 5,000/s, python (sandboxed) 1,000/s,
cosine with MiniLM 300/s. Each line of JSON is one measurement; the table repeats them.
Rows look like RFT: ``G`` samples per dataset item, so references repeat ``G`` times.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from reinforge.graders.base import make_sample
from reinforge.graders.registry import build_grader

TARGETS = {
    "string_check": 200_000,
    "rouge_1": 5_000,
    "rouge_l": 5_000,
    "bleu": 5_000,
    "python": 1_000,
    "cosine": 300,
}
WORDS = (
    "the a model answer is correct because paris capital france of city river seine north west "
    "population large small two three four"
).split()


def sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(n // 2, n)))


def make_pairs(n: int, group: int, seed: int = 0) -> list[tuple[dict, dict]]:
    """``n`` (item, sample) pairs: ``n // group`` items with ``group`` different samples each."""
    rng = random.Random(seed)
    items = [{"answer": sentence(rng)} for _ in range(max(1, n // group))]
    return [(items[i // group % len(items)], make_sample(sentence(rng))) for i in range(n)]


def measure(spec: dict, n: int, group: int, repeats: int = 3, **build) -> float:
    """Best-of-``repeats`` grades/s of ``grade_batch`` on ``n`` fresh pairs (after a warm-up batch)."""
    grader = build_grader(spec, **build)
    grader.grade_batch(make_pairs(min(n, 64), group, seed=99))  # load models / start workers
    best = 0.0
    for r in range(repeats):
        pairs = make_pairs(n, group, seed=r)
        t0 = time.perf_counter()
        grades = grader.grade_batch(pairs)
        best = max(best, n / (time.perf_counter() - t0))
        assert len(grades) == n and all(g.ok for g in grades), "benchmark rows must grade without errors"
    grader.close()
    return best


def similarity(metric: str) -> dict:
    return {
        "type": "text_similarity",
        "name": metric,
        "input": "{{sample.output_text}}",
        "reference": "{{item.answer}}",
        "evaluation_metric": metric,
    }


PYTHON_SOURCE = """
def grade(sample, item) -> float:
    out, ref = sample["output_text"].split(), item["answer"].split()
    return len(set(out) & set(ref)) / max(len(set(ref)), 1)
"""


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller batches (a smoke run)")
    args = ap.parse_args(argv)
    q = 10 if args.quick else 1
    cases = [
        (
            "string_check",
            {
                "type": "string_check",
                "name": "eq",
                "input": "{{sample.output_text}}",
                "reference": "{{item.answer}}",
                "operation": "eq",
            },
            200_000 // q,
            {},
        ),
        ("rouge_1", similarity("rouge_1"), 20_000 // q, {}),
        ("rouge_l", similarity("rouge_l"), 20_000 // q, {}),
        ("bleu", similarity("bleu"), 20_000 // q, {}),
        (
            "python",
            {"type": "python", "name": "overlap", "source": PYTHON_SOURCE},
            20_000 // q,
            {"workers": os.cpu_count()},
        ),
        ("cosine", similarity("cosine"), 2_048 // q, {}),
    ]
    results = []
    for name, spec, n, build in cases:
        rate = measure(spec, n, group=8, **build)
        row = {
            "grader": name,
            "rows": n,
            "group": 8,
            "grades_per_s": round(rate),
            "target": TARGETS[name],
            "meets_target": rate >= TARGETS[name],
            "cpus": os.cpu_count(),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'grader':<14}{'rows':>8}{'grades/s':>12}{'target':>10}  ok")
    for r in results:
        print(
            f"{r['grader']:<14}{r['rows']:>8}{r['grades_per_s']:>12,}{r['target']:>10,}  {'yes' if r['meets_target'] else 'NO'}"
        )
    return results


if __name__ == "__main__":
    main()
