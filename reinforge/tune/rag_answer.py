"""RAG scored twice: by retrieval recall and by a grader over the answer generated from the context.

:class:`AnsweringRAG` retrieves as :class:`~reinforge.tune.rag.RAGPipeline` does, then asks the
client's model to answer each question from the retrieved chunks. The grader (OpenAI grader JSON over
the question row and the answer) gives ``score``; ``recall`` (the labelled document among the
retrieved ones) and ``context_tokens`` (words of retrieved text) come beside it, so a study can trade
answer quality, recall and context cost. Knobs beyond the retriever's: ``answer_prompt`` (Text with
``{context}`` and ``{question}``), ``temperature`` (0) and ``max_tokens`` (128).

>>> answer_messages({}, "Who lends books?", ["The library lends books."])[0]["content"][:40]
'Answer the question from the context onl'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reinforge.data.jsonl import read_jsonl
from reinforge.errors import ConfigError
from reinforge.tune.llm_client import LLMClient
from reinforge.tune.objectives import ExampleObjective, whole_batch_objective
from reinforge.tune.rag import RAGPipeline, recall_at_k

ANSWER_PROMPT = "Answer the question from the context only, in one sentence.\n\nContext:\n{context}\n\nQuestion: {question}"


def answer_messages(params: dict, question: str, context: list[str]) -> list[dict]:
    template = params.get("answer_prompt") or ANSWER_PROMPT
    if "{context}" not in template or "{question}" not in template:
        raise ConfigError(f"answer_prompt {template[:60]!r}: must contain {{context}} and {{question}}")
    text = template.replace("{context}", "\n".join(f"- {c}" for c in context)).replace("{question}", question)
    return [{"role": "user", "content": text}]


class AnsweringRAG:
    """``pipeline(params, rows)``: retrieve, then answer each question from its context."""

    def __init__(self, retriever: RAGPipeline, client: LLMClient):
        self.retriever, self.client = retriever, client

    def fingerprint(self) -> dict:
        return {"retriever": self.retriever.fingerprint(), "client": self.client.fingerprint()}

    def __call__(self, params: dict, rows: list[dict]) -> list[dict]:
        retrieved = self.retriever(params, rows)
        key = self.retriever.question_key
        return self.client.map(
            lambda pair: self.answer(params, pair[0][key], *pair), list(zip(rows, retrieved))
        )

    def answer(self, params: dict, question: str, row: dict, found: dict) -> dict[str, Any]:
        reply = self.client.chat(
            answer_messages(params, question, found["context"]),
            temperature=float(params.get("temperature", 0.0)),
            max_tokens=int(params.get("max_tokens", 128)),
        )
        return {
            "output_text": reply.texts[0],
            "doc_ids": found["doc_ids"],
            "recall": recall_at_k(row, found),
            "context_tokens": found["context_tokens"],
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "model_calls": 0 if reply.cached else 1,
            "latency_s": reply.latency_s,
        }


def answering_rag_objective(
    client: LLMClient,
    documents: str | Path,
    questions: str | Path,
    grader: dict | str | Path,
    cache: Any = None,
    prices: tuple[float, float] = (0.0, 0.0),
) -> ExampleObjective:
    """Questions (``{"question", "doc_id", <reference fields for the grader>}``) answered and graded;
    ``prices``: money per 1000 prompt and completion tokens."""
    pipeline = AnsweringRAG(RAGPipeline(documents), client)
    return whole_batch_objective(
        pipeline, read_jsonl(questions), grader, f"rag-answer:{Path(documents).name}", cache, prices
    )
