"""An OpenAI Agents SDK agent that reinforge tunes through ``python:`` (docs/tune_agents.md).

``objective(params)`` runs the agent on a few questions against the OpenAI-compatible endpoint at
``$SDK_AGENT_BASE_URL`` (key in ``$SDK_AGENT_API_KEY``, model ``$SDK_AGENT_MODEL``, default ``calc``) and
returns its accuracy and tokens per question. Its knobs: whether the agent gets its calculator tool,
``max_turns``, and ``max_tokens`` per model turn. Any agent framework fits the same way: a function from a
configuration to metrics.
"""

from __future__ import annotations

import asyncio
import os

from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.exceptions import AgentsException
from openai import AsyncOpenAI

QUESTIONS = [("12+34", "46"), ("20+22", "42")]  # (question, answer)


@function_tool
def calculator(expression: str) -> str:
    """Add or multiply two whole numbers."""
    a, op, b = expression.partition("+") if "+" in expression else expression.partition("*")
    return str(int(a) + int(b) if op == "+" else int(a) * int(b))


def make_agent(params: dict) -> Agent:
    set_tracing_disabled(True)  # no trace export: nothing leaves the machine
    client = AsyncOpenAI(base_url=os.environ["SDK_AGENT_BASE_URL"], api_key=os.environ["SDK_AGENT_API_KEY"])
    model = OpenAIChatCompletionsModel(model=os.environ.get("SDK_AGENT_MODEL", "calc"), openai_client=client)
    return Agent(
        name="calc",
        model=model,
        tools=[calculator] if params["use_tool"] else [],
        model_settings=ModelSettings(temperature=0, max_tokens=params["max_tokens"]),
    )


async def answer_all(params: dict) -> dict:
    agent, right, tokens = make_agent(params), 0, 0
    for question, answer in QUESTIONS:
        try:
            result = await Runner.run(agent, question, max_turns=params["max_turns"])
        except AgentsException:  # out of turns, a call cut short by max_tokens...: a wrong answer
            continue
        right += result.final_output.strip() == answer
        tokens += result.context_wrapper.usage.total_tokens
    return {"score": right / len(QUESTIONS), "tokens": tokens / len(QUESTIONS)}


def objective(params: dict) -> dict:
    """The agent's accuracy (``score``) and tokens per question under the configuration ``params``."""
    return asyncio.run(answer_all(params))
