"""Generic tool use, the stand-in for what pretraining gives an LLM before it meets your tool.

A pretrained model can repeat a string from its context and has seen JSON function calls; a tiny model
trained from scratch has neither, and a few dozen demonstrations of one tool cannot teach both (the agent
demo's models called the calculator with invented digits). Two corpora, used in this order:

1. :func:`echo_rows`: repeat the user's text. Copying forms here within a few hundred steps, while in a
   tool call, across ~15 tokens of JSON, it did not form at all in 600 steps (1m model; benchmarks/README.md,
   "The agent demo learns").
2. :func:`lookup_episodes`: whole episodes with a generic ``lookup`` tool: the user's text copied into the
   call's argument, then the tool's answer (random digits) copied into the final answer.

Neither mentions the calculator: its name, its argument and when to call it come from its own demonstrations.

>>> ep = lookup_episodes(1, seed=0)[0]
>>> [m["role"] for m in ep["messages"]], ep["tools"][0]["function"]["name"]
(['user', 'assistant', 'tool', 'assistant'], 'lookup')
>>> ep["messages"][3]["content"] == ep["messages"][2]["content"]
True
"""

from __future__ import annotations

import json
import random

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
    },
}


def number(r: random.Random, digits: int) -> str:
    return str(r.randint(10 ** (digits - 1), 10**digits - 1))


def text(r: random.Random) -> str:
    """A digit string (3-12 digits) or an expression of two numbers of 1-6 digits (each length as likely)."""
    if r.random() < 0.4:
        return "".join(r.choice("0123456789") for _ in range(r.randint(3, 12)))
    return f"{number(r, r.randint(1, 6))}{r.choice('+-*/')}{number(r, r.randint(1, 6))}"


def echo_rows(n: int, seed: int = 0) -> list[dict]:
    """Chat rows whose answer repeats the question."""
    r = random.Random(seed)
    return [
        {"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": t}]}
        for t in (text(r) for _ in range(n))
    ]


def lookup_episodes(n: int, seed: int = 0) -> list[dict]:
    """Episodes with the ``lookup`` tool: the question as its key, its answer (random digits) repeated."""
    r = random.Random(seed)
    rows = []
    for _ in range(n):
        key, answer = text(r), "".join(r.choice("0123456789") for _ in range(r.randint(3, 13)))
        call = {
            "id": "call_0",
            "type": "function",
            "function": {"name": "lookup", "arguments": json.dumps({"key": key})},
        }
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": key},
                    {"role": "assistant", "content": "", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_0", "content": answer},
                    {"role": "assistant", "content": answer},
                ],
                "tools": [LOOKUP],
            }
        )
    return rows
