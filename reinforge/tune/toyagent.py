"""A scripted tool-using "model" behind an OpenAI-compatible endpoint, with its tools and questions.

It is no language model: a few rules that react to what an agent study tunes, so the agent tour and the
tests run offline in seconds (given a ``Context:``/``Question:`` prompt it reads: it answers with the
context line that shares the most words with the question). It calls a tool only when the tool's *description* says it fits the
question (arithmetic, or facts about countries); it chains two tools only when the system prompt tells
it to work step by step or use its tools; offered sub-agents (tools taking a ``task``) instead, it hands the
question to the one whose description fits and answers with its answer; it slips (an answer off by one) more often the higher the
temperature; every offered tool's schema costs prompt tokens. Point ``base_url`` at a real endpoint for
real work.

    python -m reinforge.tune.toyagent --port 8001       # serves /v1/chat/completions and /v1/models

>>> calculator("37 * 48"), json.loads(lookup("Japan"))["capital"]
('1776', 'Tokyo')
>>> reply = respond({"messages": [{"role": "user", "content": "What is 6 * 7?"}], "tools": [
...     {"type": "function", "function": {"name": "calc", "description": "Exact arithmetic."}}]})
>>> reply["message"]["tool_calls"][0]["function"]
{'name': 'calc', 'arguments': '{"expression": "6 * 7"}'}
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import operator
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FACTS = {  # country -> (capital, population in millions)
    "France": ("Paris", 68),
    "Japan": ("Tokyo", 125),
    "Brazil": ("Brasilia", 216),
    "Kenya": ("Nairobi", 55),
    "Canada": ("Ottawa", 40),
    "Egypt": ("Cairo", 112),
}
ARITHMETIC = ("arithmetic", "math", "calculat", "multipl")  # words that make a tool fit a sum
GEOGRAPHY = ("countr", "capital", "population")  # words that make a tool fit a fact
STEPWISE = ("step by step", "use your tools", "use the tools")
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


# -- the tools (PythonTool reads their signatures and docstrings)
def calculator(expression: str) -> str:
    """Evaluate an expression."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:60]}")

    value = ev(ast.parse(expression, mode="eval").body)
    return str(int(value) if float(value).is_integer() else round(value, 4))


def lookup(country: str) -> str:
    """Look up an entry."""
    for name, (capital, people) in FACTS.items():
        if name.lower() == country.strip().lower():
            return json.dumps({"country": name, "capital": capital, "population_millions": people})
    return json.dumps({"error": f"no entry for {country!r}"})


def clock() -> str:
    """The current time."""
    return "12:00"


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny, 21 C in {city}"


# -- the questions
def make_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` questions: a product, a capital, or a population times a number (two tool calls)."""
    rng, rows = random.Random(seed), []
    for i in range(n):
        country = rng.choice(sorted(FACTS))
        a, b = rng.randint(12, 99), rng.randint(12, 99)
        kind = ["arithmetic", "fact", "two_step"][i % 3]
        q, answer = {
            "arithmetic": (f"What is {a} * {b}?", str(a * b)),
            "fact": (f"What is the capital of {country}?", FACTS[country][0]),
            "two_step": (
                f"What is the population of {country} in millions, times {b % 7 + 2}?",
                str(FACTS[country][1] * (b % 7 + 2)),
            ),
        }[kind]
        rows.append({"messages": [{"role": "user", "content": q}], "answer": answer, "kind": kind})
    return rows


# -- the "model"
def respond(body: dict) -> dict:
    """One choice for a chat completion request: a tool call or an answer (see the module)."""
    messages, tools = body["messages"], body.get("tools") or []
    if messages[0]["role"] == "system" and messages[0]["content"].startswith("Summarise"):
        kept = [ln for ln in messages[-1]["content"].splitlines() if ln.startswith("tool:")]
        return _answer("\n".join(kept) or "nothing yet")
    system = " ".join(m["content"] for m in messages if m["role"] == "system").lower()
    question = next(m["content"] for m in messages if m["role"] == "user")
    if "Context:" in question and "Question:" in question:  # a reader: the best-matching context line
        return _answer(read(question))
    if not tools and not re.fullmatch(r"What is .*\?", question):  # a workflow step's prompt
        return _answer(step(question))
    seen = [
        m["content"]
        for m in messages
        if m["role"] == "tool" or str(m.get("content", "")).startswith("Progress so far")
    ]
    fits = {
        kind: next((t["function"]["name"] for t in tools if _fits(t, words)), None)
        for kind, words in (("calc", ARITHMETIC), ("facts", GEOGRAPHY))
    }
    if any("task" in (t["function"].get("parameters") or {}).get("properties", {}) for t in tools):
        return _orchestrate(question, fits, seen)  # its tools are sub-agents
    digest = hashlib.sha256(json.dumps([messages, body.get("temperature", 1.0)]).encode()).digest()
    slip = digest[0] / 256 < 0.4 * float(body.get("temperature", 1.0))
    if m := re.fullmatch(r"What is (\d+) \* (\d+)\?", question):
        if not seen and fits["calc"]:
            return _call(fits["calc"], {"expression": f"{m[1]} * {m[2]}"})
        value = _last_number(seen) if seen else int(m[1]) * int(m[2]) + 10  # a guess without a tool
        return _answer(str(value + slip))
    if m := re.fullmatch(r"What is the capital of (\w+)\?", question):
        if not seen and fits["facts"]:
            return _call(fits["facts"], {"country": m[1]})
        found = re.search(r'"capital": "(\w+)"', " ".join(seen))
        return _answer(found[1] if found else "I do not know.")
    if m := re.fullmatch(r"What is the population of (\w+) in millions, times (\d+)\?", question):
        people = re.search(r'"population_millions": (\d+)', " ".join(seen))
        if people is None:
            return _call(fits["facts"], {"country": m[1]}) if fits["facts"] else _answer("I do not know.")
        if len(seen) > 1:
            return _answer(str(_last_number(seen) + slip))
        if not any(w in system for w in STEPWISE):
            return _answer(people[1])  # stops at the first step: the population, not the product
        if fits["calc"]:
            return _call(fits["calc"], {"expression": f"{people[1]} * {m[2]}"})
        return _answer(str(int(people[1]) * int(m[2]) + (digest[1] % 2)))  # in its head: right half the time
    return _answer("I do not know.")


def _orchestrate(question: str, fits: dict, seen: list[str]) -> dict:
    """An orchestrator hands the whole question to the sub-agent whose description fits it (numbers to
    an arithmetic agent, countries to a geography one) and answers with what that agent says."""
    if seen:
        return _answer(seen[-1].strip())
    fit = fits["calc"] if re.fullmatch(r"What is (\d+) \* (\d+)\?", question) else fits["facts"]
    return _call(fit, {"task": question}) if fit else _answer("I do not know.")


def read(prompt: str) -> str:
    """The context line (``- ...``) sharing the most words with the question; none: "I do not know."."""
    asked = set(re.findall(r"\w+", prompt.rsplit("Question:", 1)[1].lower()))
    lines = [ln[2:] for ln in prompt.split("Question:")[0].splitlines() if ln.startswith("- ")]
    best = max(lines, key=lambda ln: len(asked & set(re.findall(r"\w+", ln.lower()))), default="")
    return best or "I do not know."


def step(prompt: str) -> str:
    """A workflow step: classifies by the labels' descriptions, multiplies exactly only when asked for
    exact arithmetic (else a guess), names a capital only when the prompt speaks of geography; JSON
    ``{"answer": ...}`` when asked for it."""
    low = prompt.lower()
    if low.startswith("classify"):
        labels = re.findall(r"^- (\w+): (.*)$", prompt, re.M)
        asked = set(re.findall(r"\w+", prompt.rsplit("Input:", 1)[-1].strip().splitlines()[0].lower()))
        return max(labels, key=lambda lb: len(asked & set(re.findall(r"\w+", lb[1].lower()))))[0]
    answer = "I do not know."
    if (m := re.search(r"(\d+) \* (\d+)", prompt)) is not None:
        answer = str(int(m[1]) * int(m[2]) + (0 if "exact" in low else 10))
    elif (m := re.search(r"capital of (\w+)", prompt)) is not None and "geograph" in low:
        answer = FACTS.get(m[1], ("I do not know.",))[0]
    return json.dumps({"answer": answer}) if "reply with json" in low else answer


def _fits(tool: dict, words: tuple[str, ...]) -> bool:
    return any(w in (tool["function"].get("description") or "").lower() for w in words)


def _last_number(seen: list[str]) -> int:
    return int(re.findall(r"-?\d+", seen[-1])[-1])


def _call(name: str, arguments: dict) -> dict:
    call = {
        "id": f"call_{name}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return {
        "message": {"role": "assistant", "content": None, "tool_calls": [call]},
        "finish_reason": "tool_calls",
    }


def _answer(text: str) -> dict:
    return {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}


def completion(body: dict) -> dict:
    """The whole chat.completion object; tokens are characters / 4 (the tools' schemas included)."""
    choice = respond(body)
    prompt = len(json.dumps(body["messages"])) + len(json.dumps(body.get("tools") or []))
    said = choice["message"]["content"] or json.dumps(choice["message"].get("tool_calls"))
    usage = {"prompt_tokens": prompt // 4, "completion_tokens": len(said) // 4 + 1}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "id": "chatcmpl-toy",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "toy-agent"),
        "choices": [{"index": 0, **choice}],
        "usage": usage,
    }


class ToyEndpoint:
    """The endpoint on 127.0.0.1 (``port=0``: a free one), in a thread; ``base_url`` ends in ``/v1``;
    ``requests`` holds every chat request's body, in order of arrival."""

    def __init__(self, port: int = 0):
        outer = self
        self.requests: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                models = {
                    "object": "list",
                    "data": [{"id": "toy-agent", "object": "model", "owned_by": "toy"}],
                }
                self._send(200, models) if self.path.endswith("/models") else self._send(404, {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                self._send(200, completion(body))

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ToyEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A scripted tool-using model (OpenAI-compatible).")
    parser.add_argument("--port", type=int, default=8001)
    port = parser.parse_args().port
    print(f"toy agent model at http://127.0.0.1:{port}/v1", flush=True)
    ToyEndpoint(port).server.serve_forever()
