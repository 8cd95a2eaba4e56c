"""``chat``: tune a chatbot on the user's own rows and grader, against any OpenAI-compatible endpoint.

Rows are OpenAI RFT rows (``{"messages": [...], <reference fields>}``); the grader is OpenAI's grader
JSON over ``item`` (the row) and ``sample`` (the reply). Knobs (all optional; defaults in brackets):
``system`` (Text: the system prompt; the row's own when absent), ``few_shot`` (how many worked examples
from the ``shots`` file go before the conversation; 0), ``model`` (a Choice of model names at the
endpoint; the client's), ``temperature`` (0), ``top_p`` (1), ``max_tokens`` (64) and ``votes``
(self-consistency: ``n`` samples, the most common answer kept; 1).

>>> msgs = chat_messages({"system": "Be brief.", "few_shot": 1},
...     {"messages": [{"role": "user", "content": "2+2"}]},
...     [[{"role": "user", "content": "1+1"}, {"role": "assistant", "content": "2"}]])
>>> [m["role"] for m in msgs]
['system', 'user', 'assistant', 'user']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reinforge.data.rft import load_rft_rows
from reinforge.errors import DataError
from reinforge.models.chat import prompt_messages
from reinforge.tune.generation import majority
from reinforge.tune.llm_client import LLMClient
from reinforge.tune.objectives import ExampleObjective, whole_batch_objective

KNOBS = ("system", "few_shot", "model", "temperature", "top_p", "max_tokens", "votes")


def chat_messages(params: dict, row: dict, shots: list[list[dict]]) -> list[dict]:
    """The system prompt (tuned, else the row's), ``few_shot`` worked examples, then the row's prompt."""
    convo = prompt_messages(row)
    own_system = [m for m in convo if m["role"] in ("system", "developer")]
    convo = [m for m in convo if m["role"] not in ("system", "developer")]
    system = [{"role": "system", "content": params["system"]}] if params.get("system") else own_system
    examples = [m for shot in shots[: int(params.get("few_shot", 0))] for m in shot]
    return system + examples + convo


def load_shots(path: str | Path | None) -> list[list[dict]]:
    """Worked examples: rows whose ``messages`` end with the assistant's answer (SFT rows)."""
    if path is None:
        return []
    shots = []
    for i, row in enumerate(load_rft_rows(path)):
        msgs = row["messages"]
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"{path}:{i + 1}: a few-shot example must end with the assistant's answer")
        shots.append([m for m in msgs if m["role"] not in ("system", "developer")])
    return shots


class ChatPipeline:
    """``pipeline(params, rows)``: one chat completion per row (``votes`` samples), at most the client's
    ``concurrency`` at once."""

    def __init__(self, client: LLMClient, shots: list[list[dict]] | None = None):
        self.client, self.shots = client, shots or []

    def fingerprint(self) -> dict:
        return {"client": self.client.fingerprint(), "shots": self.shots}

    def __call__(self, params: dict, rows: list[dict]) -> list[dict]:
        return self.client.map(lambda row: self.one(params, row), rows)

    def one(self, params: dict, row: dict) -> dict[str, Any]:
        votes = int(params.get("votes", 1))
        temperature = float(params.get("temperature", 0.0))
        reply = self.client.chat(
            chat_messages(params, row, self.shots),
            model=params.get("model"),
            temperature=temperature,
            top_p=float(params.get("top_p", 1.0)),
            max_tokens=int(params.get("max_tokens", 64)),
            n=votes if temperature > 0 and votes > 1 else None,
        )
        return {
            "output_text": majority(reply.texts) if len(reply.texts) > 1 else reply.texts[0],
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "model_calls": 0 if reply.cached else 1,
            "latency_s": reply.latency_s,
        }


def chat_objective(
    client: LLMClient,
    data: str | Path,
    grader: dict | str | Path,
    shots: str | Path | None = None,
    cache: Any = None,
    prices: tuple[float, float] = (0.0, 0.0),
) -> ExampleObjective:
    """Grade the chat pipeline on the rows of ``data`` (RFT JSONL) with ``grader`` (OpenAI grader JSON);
    ``prices``: money per 1000 prompt and completion tokens."""
    pipeline = ChatPipeline(client, load_shots(shots))
    return whole_batch_objective(
        pipeline, load_rft_rows(data), grader, f"chat:{Path(data).name}", cache, prices
    )
