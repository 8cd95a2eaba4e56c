"""``agent``: tune a tool-calling agent on the user's rows, tools and grader, through any endpoint.

The built-in loop is OpenAI's tools format: the model gets the conversation and the offered tools'
schemas; each assistant turn's ``tool_calls`` run (the agents package's ``ToolEnvironment``: Python
callables or HTTP endpoints, the same tool specs as Agent RFT) and their results go back as ``tool``
messages, until the model answers without a call or ``max_iterations`` model turns are spent. Past
``history_tokens`` (the endpoint's own count of the last prompt) the turns after the prompt are
summarised by the same model into one message, and the loop goes on from there.

Knobs (defaults in brackets): ``system`` (Text; the row's own), ``tools`` (Subset of the tool names;
all), ``tool_descriptions.<tool>`` (Text: that tool's description as the model reads it; its own),
``max_iterations`` (5), ``history_tokens`` (none), ``temperature`` (0), ``max_tokens`` per turn (256).
With sub-agents (``objective.agents``) an orchestrator may delegate to them instead: ``architecture``,
``subagents``, ``agents.<name>.*`` and ``orchestrator.prompt`` (:mod:`~reinforge.tune.subagents`).
The grader sees ``sample.output_text`` (the final answer), ``sample.output_tools`` (every agent's calls)
and ``sample.trajectory`` (its ``subagents``: each delegated task's turns); the metrics add
``tool_calls``, ``turns``, ``summaries`` and ``delegations`` per example (over all agents) to the
tokens, latency and cost every example objective reports.

>>> offered_schemas({"add": {"type": "function", "function": {"name": "add", "description": "Add."}}},
...                 {"tools": ["add"], "tool_descriptions": {"add": "Exact sums."}})[0]["function"]
{'name': 'add', 'description': 'Exact sums.'}
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from reinforge.agents.calls import ParsedTurn, ToolCall
from reinforge.agents.environment import ToolEnvironment
from reinforge.agents.tools import Tool, load_tools
from reinforge.config import read_yaml
from reinforge.data.rft import load_rft_rows
from reinforge.errors import ConfigError
from reinforge.graders.base import make_sample
from reinforge.tune.chat_objective import chat_messages
from reinforge.tune.fingerprint import digest
from reinforge.tune.llm_client import LLMClient, Reply
from reinforge.tune.objectives import ExampleObjective, whole_batch_objective
from reinforge.tune.space import Space
from reinforge.tune.subagents import (
    AgentSpec,
    Delegate,
    architecture,
    check_agent_space,
    check_subset,
    load_agents,
)

SUMMARISE = (
    "Summarise the work so far for the assistant that continues it: what was asked, every tool "
    "result (with its exact values) and what is left to do. Be brief."
)


def offered_schemas(schemas: dict[str, dict], params: dict) -> list[dict]:
    """The chosen tools' schemas, each with its tuned description when there is one."""
    descriptions = params.get("tool_descriptions") or {}
    out = []
    for name in params.get("tools", list(schemas)):
        schema = copy.deepcopy(schemas[name])
        if descriptions.get(name):
            schema["function"]["description"] = descriptions[name]
        out.append(schema)
    return out


class AgentPipeline:
    """``pipeline(params, rows)``: one agent episode per row, at most the client's ``concurrency`` at once;
    with ``architecture: orchestrator`` an orchestrator delegating to sub-agents (:mod:`.subagents`)."""

    def __init__(
        self,
        client: LLMClient,
        tools: dict[str, Tool],
        schemas: dict[str, dict],
        agents: dict[str, AgentSpec] | None = None,
    ):
        self.client, self.tools, self.schemas, self.agents = client, tools, schemas, agents or {}

    def fingerprint(self) -> dict:
        where = {
            n: getattr(t, "server_url", None) or repr(getattr(t, "fn", t)) for n, t in self.tools.items()
        }
        agents = {n: vars(a) for n, a in self.agents.items()}
        return {
            "client": self.client.fingerprint(),
            "schemas": self.schemas,
            "tools": where,
            "agents": agents,
        }

    def __call__(self, params: dict, rows: list[dict]) -> list[dict]:
        return self.client.map(lambda row: self.episode(params, row), rows)

    def episode(self, params: dict, row: dict) -> dict[str, Any]:
        rid = f"tune-{digest(row)[:16]}"
        messages = chat_messages(params, row, [])
        subruns: list[dict] = []
        if architecture(params, self.agents) == "orchestrator":
            prompt = (params.get("orchestrator") or {}).get("prompt")
            if prompt:
                messages = [{"role": "system", "content": prompt}] + [
                    m for m in messages if m["role"] not in ("system", "developer")
                ]

            def run(name: str, settings: dict, task: str) -> str:
                own = [{"role": "system", "content": settings["prompt"]}, {"role": "user", "content": task}]
                sub = self.loop(own, list(settings["tools"]), params, int(settings["max_iterations"]), rid)
                subruns.append({"agent": name, "task": task, **sub})
                return sub["final"]

            chosen = params.get("subagents", list(self.agents))
            delegates = {n: Delegate(n, self.agents[n].settings(params), run) for n in chosen}
            main = self.loop(messages, delegates, params, int(params.get("max_iterations", 5)), rid)
        else:
            names = list(params.get("tools", list(self.tools)))
            main = self.loop(messages, names, params, int(params.get("max_iterations", 5)), rid)
        runs = [main, *subruns]
        calls = [c for r in runs for c in r["calls"]]
        counts = {k: sum(r[k] for r in runs) for k in ("turns", "summaries", "invalid_calls", "tool_errors")}
        trajectory = {
            "messages": main["messages"],
            "tool_calls": len(calls),
            "status": main["status"],
            "truncation": None if main["status"] == "done" else "max_iterations",
            **counts,
            "delegations": len(subruns),
            "subagents": [{k: v for k, v in r.items() if k not in ("calls", "usage")} for r in subruns],
        }
        sample = make_sample(main["final"], [c.to_openai() for c in calls], trajectory=trajectory)
        usage = {k: sum(r["usage"][k] for r in runs) for k in main["usage"]}
        return {
            **sample,
            **usage,
            "tool_calls": len(calls),
            "turns": counts["turns"],
            "summaries": counts["summaries"],
            "delegations": len(subruns),
        }

    def loop(
        self,
        messages: list[dict],
        tools: list[str] | dict[str, Any],
        params: dict,
        max_iterations: int,
        rid: str,
    ) -> dict[str, Any]:
        """One agent's turns from ``messages`` with ``tools`` (names of the objective's tools, or tool
        objects by name) until it answers or ``max_iterations`` turns are spent; its turns, calls, counts
        and usage."""
        if isinstance(tools, dict):
            offered, schemas = tools, [t.schema for t in tools.values()]
        else:
            offered, schemas = (
                {n: self.tools[n] for n in tools},
                offered_schemas(self.schemas, {**params, "tools": tools}),
            )
        env = ToolEnvironment(offered, rollout_id=rid)
        n_prompt = len(messages)
        options = {
            "temperature": float(params.get("temperature", 0.0)),
            "max_tokens": int(params.get("max_tokens", 256)),
        }
        limit = params.get("history_tokens")
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "model_calls": 0, "latency_s": 0.0}
        calls: list[ToolCall] = []
        counts = {"turns": 0, "summaries": 0, "invalid_calls": 0, "tool_errors": 0}
        status, final, last_prompt = "max_iterations", "", 0
        for _ in range(max_iterations):
            if limit and last_prompt > int(limit) and len(messages) > n_prompt:
                messages = messages[:n_prompt] + [self.summary(messages[n_prompt:], usage)]
                n_prompt, counts["summaries"] = len(messages), counts["summaries"] + 1
            reply = self.client.chat(messages, tools=schemas or None, **options)
            add_usage(usage, reply)
            last_prompt, counts["turns"] = reply.prompt_tokens, counts["turns"] + 1
            turn = parse_turn(reply.message, len(calls))
            messages.append(turn.to_message())
            if not turn.calls and not turn.invalid:
                status, final = "done", turn.content
                break
            calls += turn.calls
            result = env.step(turn)
            messages += result.observation if isinstance(result.observation, list) else []
            counts["invalid_calls"] += len(turn.invalid)
            counts["tool_errors"] += sum(r.error is not None for r in result.results)
        return {
            "messages": messages[n_prompt:],
            "final": final,
            "status": status,
            "calls": calls,
            "usage": usage,
            "tool_calls": len(calls),
            **counts,
        }

    def summary(self, turns: list[dict], usage: dict) -> dict:
        """The turns after the prompt, summarised by the model into one user message."""
        transcript = "\n".join(
            f"{m['role']}: {m.get('content') or json.dumps(m.get('tool_calls'))}" for m in turns
        )
        reply = self.client.chat(
            [{"role": "system", "content": SUMMARISE}, {"role": "user", "content": transcript}],
            temperature=0.0,
            max_tokens=256,
        )
        add_usage(usage, reply)
        return {"role": "user", "content": f"Progress so far (summarised):\n{reply.texts[0]}"}


def add_usage(usage: dict, reply: Reply) -> None:
    usage["prompt_tokens"] += reply.prompt_tokens
    usage["completion_tokens"] += reply.completion_tokens
    usage["model_calls"] += 0 if reply.cached else 1
    usage["latency_s"] += reply.latency_s


def parse_turn(message: dict, n_before: int) -> ParsedTurn:
    """An assistant message's calls as ``ToolCall`` s (ids kept); malformed arguments are invalid calls."""
    turn = ParsedTurn(message.get("content") or "")
    for i, call in enumerate(message.get("tool_calls") or []):
        try:
            tc = ToolCall.from_openai(call)
            tc.id = call.get("id") or f"call_{n_before + i}"
            turn.calls.append(tc)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            turn.invalid.append(f"{call.get('function', {}).get('name', '?')}: bad arguments ({e})")
    return turn


def load_agent_tools(specs: list[dict] | str, base_dir: Path, rows: list[dict]) -> tuple[dict, dict]:
    """The tools (``agents.tools.load_tools``: the same specs as Agent RFT) and each one's schema: its
    own, else the one the rows' ``tools`` give (an HTTP tool's schema may live in the rows)."""
    source = "objective.tools"
    if isinstance(specs, str):
        p = Path(specs) if Path(specs).is_absolute() else base_dir / specs
        data = read_yaml(p) if p.suffix in (".yaml", ".yml") else json.loads(p.read_text())
        source, specs = str(p), data.get("tools", data) if isinstance(data, dict) else data
    tools = load_tools(specs, source)  # type: ignore[arg-type]
    from_rows = {t["function"]["name"]: t for r in rows for t in r.get("tools", [])}
    schemas = {}
    for name, tool in tools.items():
        schema = tool.schema or from_rows.get(name)
        if schema is None:
            raise ConfigError(
                f"{source}: tool {name!r} has no schema; give it 'schema' (an OpenAI ChatCompletionTool) "
                "or list it in the rows' 'tools'"
            )
        schemas[name] = schema
    return tools, schemas


def check_space(space: Space, tools: dict[str, Tool]) -> None:
    """The knobs that name tools name defined ones: ``tools`` (a Subset) and ``tool_descriptions.<tool>``."""
    known = ", ".join(tools)
    check_subset(space, "tools", list(tools), "tool")
    for name in space:
        group, _, tool = name.partition(".")
        if group == "tool_descriptions" and tool not in tools:
            raise ConfigError(
                f"space.{name}: {tool!r} is not a tool of objective.tools ({known}); "
                "rename it to one of those"
            )


def agent_objective(
    client: LLMClient,
    data: str | Path,
    grader: dict | str | Path,
    tools: list[dict] | str,
    space: Space,
    base_dir: Path = Path("."),
    cache: Any = None,
    prices: tuple[float, float] = (0.0, 0.0),
    agents: dict | None = None,
) -> ExampleObjective:
    """Grade the agent loop on the rows of ``data`` with ``grader``, the tools and the sub-agents
    (``agents``: :mod:`.subagents`) checked against ``space``."""
    rows = load_rft_rows(data)
    loaded, schemas = load_agent_tools(tools, base_dir, rows)
    check_space(space, loaded)
    specs = load_agents(agents, loaded)
    check_agent_space(space, specs, loaded)
    return whole_batch_objective(
        AgentPipeline(client, loaded, schemas, specs), rows, grader, f"agent:{Path(data).name}", cache, prices
    )
