"""Arithmetic a tiny model cannot do alone, ``"48213*5921"`` -> ``"285469173"``, with a calculator tool.

Operands have 4 to 6 digits; the operator is ``+`` or ``*``. Rows carry the tool (``tools``, OpenAI's
``ChatCompletionTool``); :func:`demonstrations` are the SFT rows that show its use (an assistant turn
with the call, the tool's answer, the final answer) and :func:`sft_rows` of the same rows are the
no-tool baseline's. The tool is :func:`calculator` here, and an HTTP endpoint in ``reinforge demo agent``.

The reward, :func:`calculator_reward`, reads both the answer and the calls: 0.8 for the exact result in
``output_text`` plus 0.2 when ``output_tools`` holds a calculator call on the question's expression.

>>> calculator("48213*5921")
'285469173'
>>> row = CalculatorTask().make_rows(1, seed=0)[0]
>>> sorted(row), row["tools"][0]["function"]["name"]
(['answer', 'messages', 'tools'], 'calculator')
>>> call = {"type": "function", "function": {"name": "calculator",
...         "arguments": json.dumps({"expression": row["messages"][0]["content"]})}}
>>> calculator_reward(row, {"output_text": row["answer"], "output_tools": [call]})
1.0
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from reinforge.graders.base import CallableGrader

NAME = "calculator"
TOOL = {
    "type": "function",
    "function": {
        "name": NAME,  # no description: every character of the schema is a token of every prompt
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}
_EXPR = re.compile(r"\s*(\d{1,18})\s*([+*])\s*(\d{1,18})\s*")


def calculator(expression: str) -> str:
    """The tool: ``"A+B"`` or ``"A*B"`` for whole numbers A, B; anything else raises ValueError."""
    m = _EXPR.fullmatch(str(expression))
    if m is None:
        raise ValueError(f"expression {expression!r}: write two whole numbers joined by + or *, e.g. 12+34")
    a, op, b = int(m[1]), m[2], int(m[3])
    return str(a + b if op == "+" else a * b)


def call_arguments(call: dict) -> dict:
    """An OpenAI-shaped call's arguments as a dict (they are a JSON string in OpenAI's shape); {} if not JSON."""
    args = (call.get("function") or {}).get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return {}
    return args if isinstance(args, dict) else {}


def calculator_reward(item: dict, sample: dict) -> float:
    """0.8 for the exact answer, plus 0.2 when a calculator call was made on the question's expression."""
    question = item["messages"][-1]["content"]
    called = any(
        (c.get("function") or {}).get("name") == NAME and call_arguments(c).get("expression") == question
        for c in sample.get("output_tools") or []
    )
    exact = sample.get("output_text", "").strip() == str(item["answer"])
    return 0.8 * exact + 0.2 * called


def split_of(expression: str) -> str:
    """~20% of expressions are held out, picked by a hash."""
    return "validation" if hashlib.md5(expression.encode()).digest()[0] < 51 else "train"


class CalculatorTask:
    name = "calculator"

    def __init__(self, min_digits: int = 4, max_digits: int = 6):
        self.min_digits, self.max_digits = min_digits, max_digits
        self.grader = CallableGrader(calculator_reward, name="calculator_reward")

    def operand(self, r: random.Random) -> int:
        digits = r.randint(self.min_digits, self.max_digits)
        return r.randint(10 ** (digits - 1), 10**digits - 1)

    def make_rows(self, n: int, seed: int = 0, split: str = "train") -> list[dict]:
        r = random.Random(f"{seed}:{split}")
        rows: list[dict] = []
        while len(rows) < n:
            expression = f"{self.operand(r)}{r.choice('+*')}{self.operand(r)}"
            if split_of(expression) != split:
                continue
            rows.append(
                {
                    "messages": [{"role": "user", "content": expression}],
                    "tools": [TOOL],
                    "answer": calculator(expression),
                }
            )
        return rows


def demonstrations(rows: list[dict], mental_additions: float = 0.0, seed: int = 0) -> list[dict]:
    """SFT rows showing the tool in use (OpenAI's chat fine-tuning format): the call, the tool's answer,
    then the answer. ``mental_additions``: the share of additions (exactly, rounded; which ones drawn with
    ``seed``) whose writer answered without the tool, as people do: the sum is right, but a model imitating
    them answers from "memory" and gets it wrong.

    >>> rows = CalculatorTask().make_rows(40, seed=0)
    >>> direct = [d for d in demonstrations(rows, mental_additions=1.0) if len(d["messages"]) == 2]
    >>> all("+" in d["messages"][0]["content"] for d in direct) and len(direct) > 0
    True
    """
    additions = [i for i, row in enumerate(rows) if "+" in row["messages"][-1]["content"]]
    mental = set(random.Random(seed).sample(additions, round(mental_additions * len(additions))))
    out = []
    for i, row in enumerate(rows):
        expression = row["messages"][-1]["content"]
        if i in mental:
            out.append({"messages": [*row["messages"], {"role": "assistant", "content": row["answer"]}],
                        "tools": row["tools"]})  # fmt: skip
            continue
        call = {
            "id": "call_0",
            "type": "function",
            "function": {"name": NAME, "arguments": json.dumps({"expression": expression})},
        }
        out.append(
            {
                "messages": [
                    *row["messages"],
                    {"role": "assistant", "content": "", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_0", "content": calculator(expression)},
                    {"role": "assistant", "content": row["answer"]},
                ],
                "tools": row["tools"],
            }
        )
    return out
