"""BM25 for the RAG pipeline: bm25s (what tune/rag.py uses) against rank-bm25 (what it used), on the
example corpus (examples/rag: 32 documents cut into 20-word chunks, 64 questions) and on it repeated 50
times (10,400 chunks): seconds to index the chunks and score every chunk for every question (best of 5),
and how often both put the same chunks in the top 3. rank-bm25 is no longer a dependency:
``pip install rank-bm25`` to run the comparison.

    python -m benchmarks.bench_bm25
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from reinforge.data.jsonl import read_jsonl
from reinforge.tune.rag import chunk_words, tokenize

RAG = Path(__file__).resolve().parents[1] / "examples" / "rag"


def with_bm25s(chunks: list[str], questions: list[str]) -> np.ndarray:
    import bm25s

    bm25 = bm25s.BM25(k1=1.5, b=0.75, method="robertson")
    bm25.index([tokenize(c) for c in chunks], show_progress=False)
    return np.stack([bm25.get_scores(tokenize(q)) for q in questions])


def with_rank_bm25(chunks: list[str], questions: list[str]) -> np.ndarray:
    from rank_bm25 import BM25Okapi

    bm25 = BM25Okapi([tokenize(c) for c in chunks])
    return np.stack([bm25.get_scores(tokenize(q)) for q in questions])


def best_seconds(fn, *args, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    docs = read_jsonl(RAG / "documents.jsonl")
    questions = [q["question"] for q in read_jsonl(RAG / "questions.jsonl")]
    chunks = [c for d in docs for c in chunk_words(d["text"], 20, 0)]
    for name, corpus in (("example", chunks), ("example x50", chunks * 50)):
        new, old = (
            best_seconds(with_bm25s, corpus, questions),
            best_seconds(with_rank_bm25, corpus, questions),
        )
        a, b = with_bm25s(corpus, questions), with_rank_bm25(corpus, questions)
        same = np.mean(
            [
                (np.argsort(-x, kind="stable")[:3] == np.argsort(-y, kind="stable")[:3]).all()
                for x, y in zip(a, b)
            ]
        )
        print(f"{name:12s} {len(corpus):5d} chunks: bm25s {new * 1e3:7.1f} ms, rank-bm25 {old * 1e3:7.1f} ms "
              f"({old / new:.1f}x); same top 3 for {same:.0%} of {len(questions)} questions")  # fmt: skip


if __name__ == "__main__":
    main()
