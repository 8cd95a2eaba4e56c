"""ToolEnvironment and SimulatedUser: observations, errors as observations, bounded concurrency."""

from __future__ import annotations

import asyncio

import pytest

from reinforge.agents.calls import ParsedTurn, ToolCall
from reinforge.agents.environment import SimulatedUser, StepResult, ToolEnvironment, openai_user
from reinforge.agents.formats import HERMES
from reinforge.agents.tools import HttpTool, PythonTool, RolloutDiscarded

ROW = {"messages": [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "5"}]}


def add(a: int, b: int) -> int:
    return a + b


def calls(*names: str, arguments: dict | None = None) -> ParsedTurn:
    args = {"a": 1, "b": 2} if arguments is None else arguments
    return ParsedTurn("", [ToolCall(n, args, f"call_{i}") for i, n in enumerate(names)])


def test_reset_gives_the_prompt_and_a_turn_without_calls_ends():
    env = ToolEnvironment({"add": PythonTool(add)})
    assert env.reset(ROW) == ROW["messages"][:1]  # the row's answer is not shown
    assert env.step(ParsedTurn("5")) == StepResult([], None, True, [])


def test_calls_are_answered_in_order_with_tool_messages():
    env = ToolEnvironment({"add": PythonTool(add)})
    env.reset(ROW)
    result = env.step(calls("add", "add"))
    assert result.observation == [
        {"role": "tool", "tool_call_id": "call_0", "name": "add", "content": "3"},
        {"role": "tool", "tool_call_id": "call_1", "name": "add", "content": "3"},
    ]
    assert not result.done and [r.error for r in result.results] == [None, None]


def test_unknown_and_invalid_calls_are_error_observations():
    env = ToolEnvironment({"add": PythonTool(add)})
    env.reset(ROW)
    turn = HERMES.parse('<tool_call>{"name": "mul", "arguments": {}}</tool_call><tool_call>{bad</tool_call>')
    result = env.step(turn)
    assert [r.error for r in result.results] == ["unknown_tool", "invalid_call"]
    assert result.observation[0]["content"] == "error: unknown tool 'mul'; the tools are: add"
    assert result.observation[1]["content"].startswith(
        "error: invalid tool call: <tool_call> block is not valid"
    )
    assert not result.done  # the model may correct itself


@pytest.mark.parametrize("turn", [calls("mul"), HERMES.parse("<tool_call>{bad</tool_call>")])
def test_on_error_end_ends_the_episode(turn):
    env = ToolEnvironment({"add": PythonTool(add)}, on_error="end")
    env.reset(ROW)
    assert env.step(turn).done


def test_a_row_offers_only_its_own_tools():
    env = ToolEnvironment({"add": PythonTool(add), "sub": PythonTool(add, name="sub")})
    env.reset({**ROW, "tools": [PythonTool(add).schema]})
    assert [r.error for r in env.step(calls("add", "sub")).results] == [None, "unknown_tool"]


def test_a_raising_tool_is_an_observation():
    def broken() -> str:
        raise RuntimeError("disk on fire")

    env = ToolEnvironment({"broken": PythonTool(broken)})
    env.reset(ROW)
    result = env.step(ParsedTurn("", [ToolCall("broken", {}, "call_0")]))
    assert result.observation[0]["content"] == "error: RuntimeError: disk on fire" and not result.done


def test_calls_run_concurrently_up_to_the_bound():
    in_flight, peak = 0, []

    async def probe_tool() -> str:
        nonlocal in_flight
        in_flight += 1
        peak.append(in_flight)
        for _ in range(5):
            await asyncio.sleep(0)  # yield to the loop (no wall-clock wait): others start if allowed
        in_flight -= 1
        return "ok"

    for bound, expected in [(2, 2), (8, 6)]:
        peak.clear()
        env = ToolEnvironment({"p": PythonTool(probe_tool)}, max_concurrency=bound)
        env.reset(ROW)
        assert len(env.step(calls(*["p"] * 6, arguments={})).results) == 6
        assert max(peak) == expected


def test_a_discarded_rollout_propagates(tool_server):
    env = ToolEnvironment(
        {"f": HttpTool("f", f"{tool_server.url}/flaky/99", backoff=0.001)}, rollout_id="ep-7"
    )
    env.reset(ROW)
    with pytest.raises(RolloutDiscarded):
        env.step(calls("f"))
    assert tool_server.attempts[("/flaky/99", "ep-7")] == 4  # the episode's rollout id on every attempt


def test_simulated_user_with_tools_and_reward():
    replies = iter(["Say it as a number, please."])
    env = SimulatedUser(lambda history: next(replies, None), {"add": PythonTool(add)}, reward=len)
    env.reset(ROW)
    assert env.step(calls("add")).observation[0]["role"] == "tool"  # tools answer tool calls
    assert env.step(ParsedTurn("five")) == StepResult(
        [{"role": "user", "content": "Say it as a number, please."}]
    )
    end = env.step(ParsedTurn("5"))  # the user has nothing more to say
    assert end.done and end.reward == 6  # user, assistant (call), tool, assistant, user, assistant


def test_simulated_user_turn_limit():
    env = SimulatedUser(lambda history: "more?", max_user_turns=2)
    env.reset(ROW)
    assert [env.step(ParsedTurn("x")).done for _ in range(3)] == [False, False, True]


def test_openai_user_against_an_openai_compatible_endpoint(tool_server):
    user = openai_user(f"{tool_server.url}/v1", "sim-user", "You want to know 2+3.")
    env = SimulatedUser(user)
    env.reset(ROW)
    assert env.step(ParsedTurn("I can't say.")).observation == [
        {"role": "user", "content": "Please give me the number."}
    ]
    assert env.step(ParsedTurn("It is 5.")).done  # the simulated user said DONE
