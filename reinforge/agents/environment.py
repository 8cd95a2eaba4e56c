"""The environment protocol: what answers the model between turns of an episode.

``reset(row)`` gives the first observation (usually the row's prompt messages); ``step(turn)`` takes the
model's parsed turn and gives the next observation, an optional reward and whether the episode is done.
:class:`ToolEnvironment` is the default: it runs the turn's tool calls and answers with tool messages.

An environment may also define ``async astep(turn, limiter=None)`` (the episode runner prefers it: the
turns of all live episodes then share one event loop, their tool calls bounded by one ``limiter``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from reinforge.agents.calls import ParsedTurn, ToolCall
from reinforge.agents.tools import Tool, ToolResult
from reinforge.models.chat import prompt_messages


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
    """The default environment: runs a turn's tool calls and answers with one ``tool`` message per call.

    The calls of a turn run concurrently, at most ``max_concurrency`` at once (or under the ``limiter``
    the episode runner shares across episodes). A call to a tool the row does not offer
    (``unknown_tool``) or a malformed call (``invalid_call``) is answered with an error message the model
    can correct itself from (``on_error="observe"``), or ends the episode (``on_error="end"``). The
    episode is done when the model answers without a call. A tool endpoint's RolloutDiscarded propagates.

    >>> from reinforge.agents.formats import HERMES
    >>> from reinforge.agents.tools import PythonTool
    >>> def add(a: int, b: int) -> int:
    ...     return a + b
    >>> env = ToolEnvironment({"add": PythonTool(add)})
    >>> env.reset({"messages": [{"role": "user", "content": "2+3?"}]})
    [{'role': 'user', 'content': '2+3?'}]
    >>> turn = HERMES.parse('<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>')
    >>> env.step(turn).observation
    [{'role': 'tool', 'tool_call_id': 'call_0', 'name': 'add', 'content': '5'}]
    >>> env.step(HERMES.parse("5")).done
    True
    """

    def __init__(
        self,
        tools: dict[str, Tool],
        max_concurrency: int = 8,
        on_error: Literal["observe", "end"] = "observe",
        rollout_id: str = "rollout-0",
    ):
        if on_error not in ("observe", "end"):
            raise ValueError(f"on_error {on_error!r}: choose 'observe' or 'end'")
        self.tools = tools
        self.max_concurrency = max_concurrency
        self.on_error = on_error
        self.rollout_id = rollout_id  # sent to HTTP tools; the runner gives each episode its own
        self.offered: set[str] = set(tools)

    def reset(self, row: dict) -> list[dict]:
        """The row's prompt messages; the tools offered are the row's ``tools`` when it has them."""
        if "tools" in row:
            self.offered = {t["function"]["name"] for t in row["tools"]}
        else:
            self.offered = set(self.tools)
        return prompt_messages(row)

    def step(self, action: ParsedTurn) -> StepResult:
        """Run the turn's calls on a fresh event loop (use :meth:`astep` from async code)."""
        return asyncio.run(self.astep(action))

    async def astep(self, action: ParsedTurn, limiter: asyncio.Semaphore | None = None) -> StepResult:
        limiter = limiter or asyncio.Semaphore(self.max_concurrency)
        results = list(await asyncio.gather(*(self._run(c, limiter) for c in action.calls)))
        messages = [tool_message(c, r) for c, r in zip(action.calls, results, strict=True)]
        for message in action.invalid:
            results.append(ToolResult(f"error: invalid tool call: {message}", "invalid_call"))
            messages.append({"role": "tool", "content": results[-1].text})
        failed = any(r.error in ("invalid_call", "unknown_tool") for r in results)
        done = not action.calls and not action.invalid or (failed and self.on_error == "end")
        return StepResult(messages, None, done, results)

    async def _run(self, call: ToolCall, limiter: asyncio.Semaphore) -> ToolResult:
        tool = self.tools.get(call.name) if call.name in self.offered else None
        if tool is None:
            offered = ", ".join(sorted(self.offered & set(self.tools))) or "none"
            return ToolResult(f"error: unknown tool {call.name!r}; the tools are: {offered}", "unknown_tool")
        async with limiter:
            return await tool.call(call.arguments, self.rollout_id)


def tool_message(call: ToolCall, result: ToolResult) -> dict:
    """The OpenAI ``tool`` message answering ``call``."""
    return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result.text}


UserFn = Callable[
    [list[dict]], str | None
]  # the conversation so far -> the user's next message, or None: done


class SimulatedUser:
    """A dialogue with a simulated user (an example of an environment richer than tools).

    While the model calls tools, the tools answer (as :class:`ToolEnvironment`); when it answers in
    text, ``user(history)`` writes the user's next message, or None when satisfied. The episode ends
    then, or after ``max_user_turns`` replies; ``reward(history)``, if given, scores it (else the
    grader does). ``user`` is any callable, e.g. :func:`openai_user` for an OpenAI-compatible model.

    >>> from reinforge.agents.formats import HERMES
    >>> env = SimulatedUser(lambda h: None if "Paris" in h[-1]["content"] else "Which city, exactly?")
    >>> _ = env.reset({"messages": [{"role": "user", "content": "Capital of France?"}]})
    >>> env.step(HERMES.parse("A city in France.")).observation
    [{'role': 'user', 'content': 'Which city, exactly?'}]
    >>> env.step(HERMES.parse("Paris.")).done
    True
    """

    def __init__(
        self,
        user: UserFn,
        tools: dict[str, Tool] | None = None,
        max_user_turns: int = 3,
        reward: Callable[[list[dict]], float] | None = None,
    ):
        self.user = user
        self.tool_env = ToolEnvironment(tools or {})
        self.max_user_turns = max_user_turns
        self.reward = reward
        self.history: list[dict] = []
        self.user_turns = 0

    def reset(self, row: dict) -> list[dict]:
        self.history = self.tool_env.reset(row)
        self.user_turns = 0
        return list(self.history)

    def step(self, action: ParsedTurn) -> StepResult:
        return asyncio.run(self.astep(action))

    async def astep(self, action: ParsedTurn, limiter: asyncio.Semaphore | None = None) -> StepResult:
        self.history.append(action.to_message())
        if action.calls or action.invalid:
            result = await self.tool_env.astep(action, limiter)
            self.history.extend(result.observation)  # type: ignore[arg-type]
            return result
        reply = (
            None
            if self.user_turns >= self.max_user_turns
            else await asyncio.to_thread(self.user, self.history)
        )
        if reply is None:
            return StepResult([], self.reward(self.history) if self.reward else None, True)
        self.user_turns += 1
        message = {"role": "user", "content": reply}
        self.history.append(message)
        return StepResult([message])


def openai_user(
    base_url: str, model: str, instructions: str, api_key: str = "-", done_word: str = "DONE"
) -> UserFn:
    """A simulated user played by a model behind any OpenAI-compatible endpoint: it gets ``instructions``
    as its system prompt and the dialogue with the roles swapped (the agent speaks as ``user``); a reply
    containing ``done_word`` ends the dialogue. Tool messages are left out (the user does not see them)."""
    from openai import OpenAI  # the client is only needed when a model plays the user

    client = OpenAI(base_url=base_url, api_key=api_key)
    swap = {"user": "assistant", "assistant": "user"}

    def user(history: list[dict]) -> str | None:
        messages = [{"role": "system", "content": instructions}] + [
            {"role": swap[m["role"]], "content": m.get("content") or ""} for m in history if m["role"] in swap
        ]
        reply = (
            client.chat.completions.create(model=model, messages=messages).choices[0].message.content or ""
        )
        return None if done_word in reply else reply

    return user
