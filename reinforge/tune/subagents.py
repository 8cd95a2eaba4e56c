"""Sub-agents for ``agent`` studies: an orchestrator that delegates to named agents, each with its own
prompt, tools and ``max_iterations``.

``objective.agents`` defines them (``{name: {description, prompt, tools, max_iterations}}``); with
``architecture: orchestrator`` the orchestrator is offered one tool per chosen sub-agent (its
``description`` is what the orchestrator reads; the call's one argument is the ``task``), and a call runs
that agent's own loop on the task, whose final answer comes back as the tool's result. The knobs:

- ``architecture``: ``single`` (one agent with ``tools``) or ``orchestrator`` (default: orchestrator
  when agents are defined), usually a Choice with the knobs below under ``when``;
- ``subagents``: the agents the orchestrator may call (a Subset of their names; default all);
- ``agents.<name>.prompt|tools|max_iterations|description``: that agent's settings (default its spec);
- ``orchestrator.prompt``: the orchestrator's system prompt (default ``system``).

>>> delegate_schema("geo", "Facts about countries.")["function"]["parameters"]["required"]
['task']
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reinforge.agents.tools import ToolResult
from reinforge.data.rft import TOOL_NAME
from reinforge.errors import ConfigError
from reinforge.tune.params import Choice
from reinforge.tune.space import Space, Subset

ARCHITECTURES = ("single", "orchestrator")
AGENT_KNOBS = ("prompt", "tools", "max_iterations", "description")
KINDS = {
    "tool": ("a tool", "objective.tools"),
    "agent": ("an agent", "objective.agents"),
}  # what a Subset names


@dataclass
class AgentSpec:
    """A sub-agent as ``objective.agents.<name>`` defines it (the defaults of its knobs)."""

    name: str
    description: str  # what the orchestrator reads to choose it
    prompt: str = "You are a helpful assistant."  # its system prompt
    tools: list[str] = field(default_factory=list)  # the tools it may call
    max_iterations: int = 5  # its model turns per task

    def settings(self, params: dict) -> dict:
        """Its knobs in ``params`` (``agents.<name>.*``, nested) over its spec's values."""
        tuned = ((params.get("agents") or {}).get(self.name)) or {}
        own = {k: getattr(self, k) for k in AGENT_KNOBS}
        return {**own, **{k: v for k, v in tuned.items() if v is not None}}


def delegate_schema(name: str, description: str) -> dict:
    """The tool through which the orchestrator hands ``name`` a task."""
    task = {"type": "string", "description": "The task for this agent, with every fact it needs."}
    parameters = {"type": "object", "properties": {"task": task}, "required": ["task"]}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def load_agents(specs: dict | None, tools: dict[str, Any]) -> dict[str, AgentSpec]:
    """``objective.agents`` checked: names fit a tool name, each has a description, its tools exist."""
    agents: dict[str, AgentSpec] = {}
    known = ", ".join(tools)
    for name, spec in (specs or {}).items():
        where = f"objective.agents.{name}"
        if not TOOL_NAME.match(name):
            raise ConfigError(
                f"{where}: the name must be 1-64 letters, digits, _ or - (the orchestrator calls it)"
            )
        if not isinstance(spec, dict) or not spec.get("description"):
            raise ConfigError(
                f"{where}.description: required: one line saying what {name} does (the orchestrator reads it)"
            )
        unknown = set(spec) - {"description", "prompt", "tools", "max_iterations"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {sorted(unknown)}; use description, prompt, tools, max_iterations"
            )
        for t in spec.get("tools", []):
            if t not in tools:
                raise ConfigError(
                    f"{where}.tools: {t!r} is not a tool of objective.tools ({known}); define it there or drop it"
                )
        agents[name] = AgentSpec(name, **spec)
    return agents


def check_subset(space: Space, name: str, defined: list[str], kind: str) -> None:
    """``space.<name>``, when there, is a Subset of the ``kind`` names ``defined`` (tools or agents)."""
    p, (what, where) = space.params.get(name), KINDS[kind]
    if p is None:
        return
    if not isinstance(p, Subset):
        raise ConfigError(f"space.{name}: make it {{type: subset, options: [{kind} names]}}")
    for option in p.options:
        if option not in defined:
            raise ConfigError(
                f"space.{name}: option {option!r} is not {what} of {where} "
                f"({', '.join(defined) or 'none'}); define it there or drop it from the options"
            )


def check_agent_space(space: Space, agents: dict[str, AgentSpec], tools: dict[str, Any]) -> None:
    """The architecture knobs name what ``objective.agents`` and ``objective.tools`` define."""
    defined = ", ".join(agents) or "none"
    arch = space.params.get("architecture")
    if arch is not None:
        values = arch.values if isinstance(arch, Choice) else None
        if values is None or set(values) - set(ARCHITECTURES):
            raise ConfigError("space.architecture: make it {type: choice, values: [single, orchestrator]}")
        if "orchestrator" in values and not agents:
            raise ConfigError("space.architecture: 'orchestrator' needs sub-agents; define objective.agents")
    check_subset(space, "subagents", list(agents), "agent")
    for name in space:
        group, _, rest = name.partition(".")
        if group != "agents":
            continue
        agent, _, knob = rest.partition(".")
        if agent not in agents:
            raise ConfigError(
                f"space.{name}: {agent!r} is not an agent of objective.agents ({defined}); rename it"
            )
        if knob not in AGENT_KNOBS:
            raise ConfigError(
                f"space.{name}: {knob!r} is not an agent's knob; use one of {', '.join(AGENT_KNOBS)}"
            )
        if knob == "tools":
            check_subset(space, name, list(tools), "tool")


def architecture(params: dict, agents: dict[str, AgentSpec]) -> str:
    return str(params.get("architecture") or ("orchestrator" if agents else "single"))


class Delegate:
    """The orchestrator's tool for one sub-agent: a call runs ``run(name, settings, task)`` (the agent's
    own loop, in a thread: it makes its own blocking calls) and answers with its final answer."""

    def __init__(self, name: str, settings: dict, run: Callable[[str, dict, str], Any]):
        self.name, self.settings, self.run = name, settings, run
        self.schema = delegate_schema(name, settings["description"])

    async def call(self, arguments: dict, rollout_id: str) -> ToolResult:
        task = arguments.get("task")
        if not isinstance(task, str) or not task.strip():
            return ToolResult("error: give the agent a 'task' (a string)", "invalid_call")
        final = await asyncio.to_thread(self.run, self.name, self.settings, task)
        return ToolResult(final or "(no answer)")
