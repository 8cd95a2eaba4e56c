"""Tool executors: a Python callable (trusted user code) or an HTTP endpoint in Agent RFT's shape.

Every call returns a :class:`ToolResult` whose ``text`` is what the model sees as the tool's answer;
only a tool server failing with 5xx past its retries raises (:class:`RolloutDiscarded`): the episode is
discarded and counted, never trained on with a broken tool's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

MAX_PAYLOAD_BYTES = 1_000_000  # each way: arguments sent, response read
ERROR_KINDS = ("invalid_call", "unknown_tool", "raised", "http_4xx", "timeout", "payload_too_large")


@dataclass
class ToolResult:
    """One tool call's outcome: the text the model sees, the error kind (None on success), the latency."""

    text: str
    error: str | None = None  # None or one of ERROR_KINDS
    seconds: float = 0.0


class RolloutDiscarded(Exception):
    """A tool endpoint answered 5xx (or not at all) on every attempt: the episode is discarded and counted."""


class Tool(Protocol):
    """A tool the model can call: its name, its OpenAI ``ChatCompletionTool`` schema, and ``call``."""

    name: str
    schema: dict | None  # {"type": "function", "function": {...}}; None when the rows' `tools` carry it

    async def call(self, arguments: dict, rollout_id: str) -> ToolResult: ...


class PythonTool:
    """A Python function as a tool: ``PythonTool.from_ref("module:function")`` (trusted user code).
    A raising function's error text is the result (``error="raised"``)."""

    def __init__(self, fn: Any, name: str | None = None, schema: dict | None = None, timeout: float = 30.0):
        raise NotImplementedError  # filled in next commit


class HttpTool:
    """An HTTP endpoint in Agent RFT's shape ``{name, server_url, headers}``: the arguments are POSTed as
    JSON with an ``X-Rollout-Id`` header; 5xx is retried 3 times with backoff, then RolloutDiscarded;
    4xx text is the result; a timeout and a 1 MB cap each way are error results."""

    def __init__(
        self,
        name: str,
        server_url: str,
        headers: dict | None = None,
        schema: dict | None = None,
        timeout: float = 30.0,
        max_bytes: int = MAX_PAYLOAD_BYTES,
        retries: int = 3,
        backoff: float = 0.5,
        source: str = "tools",
    ):
        raise NotImplementedError  # filled in next commit


def load_tools(specs: list[dict], source: str) -> dict[str, Tool]:
    """Tools from config specs: ``{"name", "server_url", "headers"?}`` or ``{"python": "module:function",
    "name"?}``; a bad spec is a ConfigError naming ``source`` and the key."""
    raise NotImplementedError


async def probe(tools: Any) -> None:
    """Check every HTTP tool answers before training starts; one ReinforgeError names the first that does not."""
    raise NotImplementedError
