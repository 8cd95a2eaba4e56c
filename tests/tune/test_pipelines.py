"""The pipelines users tune out of the box: RAG retrieval and a local model's generation."""

from __future__ import annotations

from pathlib import Path

import pytest

from reinforge.tune.rag import RAGPipeline, chunk_words, rag_objective

RAG = Path(__file__).resolve().parents[2] / "examples" / "rag"


@pytest.mark.parametrize(
    "size,overlap,expected",
    [
        (3, 0, ["a b c", "d e f", "g"]),  # no overlap: disjoint windows
        (3, 1, ["a b c", "c d e", "e f g"]),  # overlap 1: windows share one word
        (10, 0, ["a b c d e f g"]),  # a chunk larger than the text: the whole text
    ],
)
def test_chunk_words_table(size, overlap, expected):
    assert chunk_words("a b c d e f g", size, overlap) == expected


def test_rag_bm25_recall_grows_with_k_and_costs_context(tmp_path):
    obj = rag_objective(RAG / "documents.jsonl", RAG / "questions.jsonl", cache=tmp_path / "c.db")
    base = {"chunk_size": 100, "chunk_overlap": 0, "retriever": "bm25"}
    r1, r5 = obj({**base, "k": 1}), obj({**base, "k": 5})
    assert r1["examples"] == 64 and 0.5 < r1["score"] < r5["score"] <= 1.0
    assert r5["context_tokens"] > 3 * r1["context_tokens"]
    assert r1["model_calls"] == 0 and r1["examples_graded"] == 64
    assert obj({**base, "k": 1})["examples_graded"] == 0  # cached


def test_bm25_ranks_by_term_rarity_and_a_question_of_stop_words_matches_nothing(tmp_path):
    docs = ["apple pie recipe", "apple tart", "pear crumble with apple", "plum jam"]
    (tmp_path / "d.jsonl").write_text(
        "".join(f'{{"id": "d{i}", "text": "{t}"}}\n' for i, t in enumerate(docs))
    )
    pipe = RAGPipeline(tmp_path / "d.jsonl")
    scores, _, owners = pipe.scores({"chunk_size": 10, "retriever": "bm25"}, ["apple pie", "the of", "plum"])
    assert owners[scores[0].argmax()] == "d0" and owners[scores[2].argmax()] == "d3"  # the rarer term wins
    assert scores[1].tolist() == [0.0] * 4


@pytest.mark.slow  # loading sentence-transformers and MiniLM takes 10-25 s on a busy 2-core machine
def test_rag_dense_retrieval_with_minilm():
    pipe = RAGPipeline(RAG / "documents.jsonl")
    rows = [{"question": "Where can I dispose of used batteries?"}, {"question": "When is the dump closed?"}]
    outs = pipe({"chunk_size": 200, "chunk_overlap": 0, "k": 1, "retriever": "dense"}, rows)
    assert [o["doc_ids"] for o in outs] == [["d04"], ["d06"]]  # paraphrases found by meaning
    hybrid = pipe(
        {"chunk_size": 200, "chunk_overlap": 0, "k": 2, "retriever": "hybrid", "hybrid_weight": 0.5}, rows
    )
    assert all(len(o["doc_ids"]) == 2 for o in hybrid)


def test_generation_pipeline_counts_tokens_calls_and_votes(tmp_path):
    from reinforge.tune.generation import generation_objective

    obj = generation_objective(
        "tiny:addition:1m",
        examples=4,
        shots=2,
        cache=tmp_path / "c.db",
        price_per_1k_input=1.0,
        price_per_1k_output=2.0,
    )
    greedy = obj({"template": "{input}", "temperature": 0.0, "max_tokens": 4})
    assert greedy["model_calls"] == 4 and greedy["tokens_spent"] > 0 and greedy["cost_usd"] > 0
    assert greedy["score"] > 0.2  # the warmed-up tiny model adds two-digit numbers partly right
    voted = obj({"template": "{input}", "temperature": 0.7, "votes": 3, "max_tokens": 4})
    assert voted["model_calls"] == 12 and voted["tokens"] > greedy["tokens"]
    shots = obj({"template": "{input}", "few_shot": 2, "max_tokens": 4})
    assert shots["tokens"] > greedy["tokens"]  # few-shot examples cost prompt tokens
    assert obj({"template": "{input}", "temperature": 0.0, "max_tokens": 4})["model_calls"] == 0  # cached
