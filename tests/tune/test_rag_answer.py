"""RAG studies with answers: recall and a grader over the generated answer, side by side."""

from __future__ import annotations

import pytest
import yaml

from reinforge.config import load_config
from reinforge.errors import ConfigError
from reinforge.tune.factory import build_objective
from reinforge.tune.rag_answer import answer_messages
from reinforge.tune.schema import TuneConfig
from reinforge.tune.toyagent import ToyEndpoint
from tests.helpers import write_jsonl

DOCS = [
    {"id": "hours", "text": "The library opens at nine and closes at six on weekdays."},
    {"id": "loans", "text": "Books are lent for three weeks and films for one week."},
    {"id": "fees", "text": "Membership is free for residents and twelve crowns for visitors."},
]
QUESTIONS = [
    {"question": "How long are books lent for?", "doc_id": "loans", "answer": "three weeks"},
    {"question": "When does the library open?", "doc_id": "hours", "answer": "nine"},
    {"question": "What do visitors pay for membership?", "doc_id": "fees", "answer": "twelve crowns"},
]
GRADER = {
    "type": "string_check",
    "name": "mentions",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "ilike",
}


def config(tmp_path, base_url: str):
    data = {
        "output_dir": str(tmp_path / "out"),
        "objective": {
            "type": "rag",
            "documents": str(write_jsonl(tmp_path / "docs.jsonl", DOCS)),
            "questions": str(write_jsonl(tmp_path / "q.jsonl", QUESTIONS)),
            "grader": GRADER,
            "llm": {"model": "toy-agent", "base_url": base_url},
        },
        "objectives": {"score": "maximize", "recall": "maximize", "context_tokens": "minimize"},
        "space": {"k": {"type": "int", "low": 1, "high": 3}, "chunk_size": [6, 40]},
    }
    path = tmp_path / "rag.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(TuneConfig, path)


def test_answers_are_graded_beside_recall_and_context_cost(tmp_path):
    with ToyEndpoint() as toy:
        obj = build_objective(config(tmp_path, toy.base_url), tmp_path)
        whole = obj({"k": 1, "chunk_size": 40, "retriever": "bm25"})  # whole documents: all found
        tiny = obj({"k": 1, "chunk_size": 6, "retriever": "bm25"})  # 6-word chunks cut answers off
    assert whole["recall"] == 1.0 and whole["score"] == 1.0
    assert tiny["context_tokens"] < whole["context_tokens"]
    assert tiny["score"] < whole["score"]  # recall alone would not tell them apart this much
    assert whole["tokens"] > 0 and whole["model_calls"] == 3


def test_an_answer_prompt_without_its_slots_is_named():
    with pytest.raises(
        ConfigError, match=r"answer_prompt 'Answer\.': must contain \{context\} and \{question\}"
    ):
        answer_messages({"answer_prompt": "Answer."}, "q", ["c"])


def test_rag_with_an_llm_needs_a_grader(tmp_path):
    cfg = config(tmp_path, "http://127.0.0.1:9/v1")
    cfg.objective.grader = None
    with pytest.raises(ConfigError, match="objective.grader: give the OpenAI grader JSON"):
        build_objective(cfg, tmp_path)
