"""The environment protocol: what answers the model between turns of an episode.

``reset(row)`` gives the first observation (usually the row's prompt messages); ``step(turn)`` takes the
model's parsed turn and gives the next observation, an optional reward and whether the episode is done.
:class:`ToolEnvironment` is the default: it runs the turn's tool calls and answers with tool messages.

Note to the episode runner: an environment may also define ``async astep(turn, limiter=None)``;
:func:`run_steps` steps many environments concurrently (one event loop per turn, calls bounded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from reinforge.agents.calls import ParsedTurn
from reinforge.agents.tools import ToolResult


@dataclass
class StepResult:
    """What the environment answers to one model turn."""

    observation: str | list[dict]  # text, or messages appended to the episode (e.g. role "tool")
    reward: float | None = None  # None: the grader scores the episode at the end
    done: bool = False
    results: list[ToolResult] = field(default_factory=list)  # this turn's tool calls (invalid ones too)


class Environment(Protocol):
    """Anything the model acts in. Call order: ``reset`` once, then ``step`` until ``done``."""

    def reset(self, row: dict) -> str | list[dict]:
        """The first observation for a dataset row (may be the row's messages)."""
        ...

    def step(self, action: ParsedTurn) -> StepResult:
        """Answer one model turn."""
        ...


class ToolEnvironment:
    """The default: runs a turn's tool calls (concurrently, bounded) and answers with ``tool`` messages;
    done when the model answers without a call."""

    def __init__(self, tools: dict, max_concurrency: int = 8, on_error: str = "observe"):
        raise NotImplementedError  # filled in next commit
