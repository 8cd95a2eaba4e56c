"""Tools in ``/v1/chat/completions`` through the official ``openai`` client against a real ``reinforge serve``:
``tool_calls`` in OpenAI's shape, the tool's answer sent back, ``tool_choice``, streaming, and the OpenAI
Agents SDK running an agent on a reinforge-served model.

The served model is a small one taught (SFT, a few seconds) to answer the two conversations below: a
calculator call for "12+34", then "46" once the tool has answered."""

from __future__ import annotations

import json

import pytest

openai = pytest.importorskip("openai")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import PlainTextResponse  # noqa: E402

from reinforge.demo_agent import ToolServer  # noqa: E402
from reinforge.tasks.calculator import TOOL, calculator  # noqa: E402
from tests.helpers import wait_for, write_jsonl  # noqa: E402
from tests.serve.helpers import quick_rft_method, start_server  # noqa: E402

QUESTION, ANSWER = "12+34", "46"
CALL = {
    "id": "call_0",
    "type": "function",
    "function": {"name": "calculator", "arguments": json.dumps({"expression": QUESTION})},
}


def agents_sdk_tool():
    """The calculator as the Agents SDK declares it, and its chat-completions schema (what the SDK sends)."""
    agents = pytest.importorskip("agents")
    from agents.models.chatcmpl_converter import Converter

    @agents.function_tool
    def calculator_tool(expression: str) -> str:
        """Add or multiply two whole numbers."""
        return calculator(expression)

    calculator_tool.name = "calculator"
    return calculator_tool, Converter.tool_to_openai(calculator_tool)


def conversation(tools: list[dict]) -> dict:
    """An SFT row with ``tools``: the call, the tool's result, the answer (both assistant turns are learnt)."""
    return {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_0", "content": ANSWER},
            {"role": "assistant", "content": ANSWER},
        ],
        "tools": tools,
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from reinforge.models.tiny import build_model, build_tokenizer, save_tiny
    from reinforge.train.sft import sft_warmup

    tool_lists = [[TOOL]]
    try:
        tool_lists.append([agents_sdk_tool()[1]])
    except pytest.skip.Exception:
        pass
    rows = [conversation(tools) for tools in tool_lists]
    tok = build_tokenizer()
    model = build_model("1m", seed=0, vocab_size=len(tok))
    sft_warmup(model, tok, rows, steps=80, batch_size=len(rows), lr=3e-3)
    root = tmp_path_factory.mktemp("chat-tools")
    save_tiny(model, tok, root / "calc")
    srv = start_server(root / "data", workers=1, models=(root / "calc",))
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.new_key("alice"), max_retries=0, timeout=60)
    yield client
    srv.stop()


def ask(client, messages, **kw):
    return client.chat.completions.create(model="calc", messages=messages, temperature=0, max_tokens=96, **kw)


def test_a_call_comes_back_as_tool_calls_and_the_tools_answer_gets_the_final_answer(served):
    reply = ask(served, [{"role": "user", "content": QUESTION}], tools=[TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == {
        "expression": QUESTION
    }
    assert not choice.message.content  # nothing but the call
    # the client sends the call back with the tool's result, as an OpenAI agent loop does
    result = calculator(json.loads(call.function.arguments)["expression"])
    history = [
        {"role": "user", "content": QUESTION},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    final = ask(served, history, tools=[TOOL]).choices[0]
    assert final.finish_reason == "stop" and final.message.content == ANSWER and not final.message.tool_calls


def test_tool_choice_none_renders_no_tools_and_parses_no_calls(served):
    reply = ask(served, [{"role": "user", "content": QUESTION}], tools=[TOOL], tool_choice="none").choices[0]
    assert reply.finish_reason in ("stop", "length") and not reply.message.tool_calls


def test_a_named_tool_choice_starts_the_reply_as_that_call(served):
    named = {"type": "function", "function": {"name": "calculator"}}
    reply = ask(served, [{"role": "user", "content": QUESTION}], tools=[TOOL], tool_choice=named).choices[0]
    assert reply.finish_reason == "tool_calls" and reply.message.tool_calls[0].function.name == "calculator"


def test_streamed_tool_calls_arrive_as_chunks(served):
    stream = ask(served, [{"role": "user", "content": QUESTION}], tools=[TOOL], stream=True)
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["calculator"] and calls[0].index == 0
    assert json.loads(calls[0].function.arguments) == {"expression": QUESTION}


@pytest.mark.parametrize(
    "body, param",
    [
        ({"tools": [{"type": "function"}]}, "tools"),  # no function object
        ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools"),  # no name
        ({"tool_choice": "auto"}, "tool_choice"),  # a tool choice without tools
        ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),  # not a mode
        ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "web"}}}, "tool_choice"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": "calculator"}},
            "tool_choice",
        ),  # was a 500
        ({"messages": [{"role": "assistant", "tool_calls": ["calculator"]}]}, "messages"),  # was a 500
    ],
)
def test_malformed_tools_are_400_naming_the_parameter(served, body, param):
    with pytest.raises(openai.BadRequestError) as e:
        served.chat.completions.create(
            **{"model": "calc", "messages": [{"role": "user", "content": "1+2"}], **body}
        )
    assert e.value.body["param"] == param


def test_an_agents_sdk_agent_runs_on_a_served_model(served):
    tool, _ = agents_sdk_tool()
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled

    set_tracing_disabled(True)  # no trace export: nothing leaves the machine
    client = openai.AsyncOpenAI(base_url=str(served.base_url), api_key=served.api_key, max_retries=0)
    model = OpenAIChatCompletionsModel(model="calc", openai_client=client)
    agent = Agent(name="calc", model=model, tools=[tool], model_settings=agents_settings())
    result = Runner.run_sync(agent, QUESTION, max_turns=3)
    assert result.final_output == ANSWER
    calls = [i for i in result.new_items if i.type == "tool_call_item"]
    assert len(calls) == 1 and json.loads(calls[0].raw_item.arguments) == {"expression": QUESTION}


def agents_settings():
    from agents import ModelSettings

    return ModelSettings(temperature=0, max_tokens=96)


# a python grader (run in the sandbox) that reads the episode's calls as well as its answer
CALLS_GRADER = {
    "type": "python",
    "name": "calls",
    "source": (
        "def grade(sample, item):\n"
        "    called = any(c['function']['name'] == 'calculator' for c in sample['output_tools'])\n"
        "    return 0.5 * called + 0.5 * (sample['output_text'].strip() == item['answer'])\n"
    ),
}


@pytest.mark.slow  # a job through the server's worker: ~1-3 min on 2 busy cores (tests/test_openai_compat: the mapping)
def test_an_agent_rft_job_calls_the_tool_endpoint_and_its_model_answers_with_tool_calls(served, tmp_path):
    rollouts: list[str] = []
    app = FastAPI()

    @app.post("/calculator")
    async def calc(request: Request) -> PlainTextResponse:  # records each call's rollout id
        rollouts.append(request.headers.get("x-rollout-id", ""))
        return PlainTextResponse(calculator(**await request.json()))

    row = {"messages": [{"role": "user", "content": QUESTION}], "tools": [TOOL], "answer": ANSWER}
    train = served.files.create(
        file=write_jsonl(tmp_path / "t.jsonl", [row] * 4).open("rb"), purpose="fine-tune"
    )
    method = quick_rft_method(CALLS_GRADER, steps=2, max_new_tokens=96, learning_rate=1e-6)
    with ToolServer(app) as url:  # Agent RFT's keys: the endpoint and the turns an episode may take
        endpoint = {"name": "calculator", "server_url": f"{url}/calculator"}
        method["reinforcement"] |= {"tools": [endpoint], "max_episode_steps": 3}
        job = served.fine_tuning.jobs.create(model="calc", training_file=train.id, method=method)

        def finished():
            j = served.fine_tuning.jobs.retrieve(job.id)
            assert j.status not in ("failed", "cancelled"), j.error
            return j if j.status == "succeeded" else None

        job = wait_for(finished, timeout=300)
    metrics = [
        e.data for e in served.fine_tuning.jobs.list_events(job.id, limit=50).data if e.type == "metrics"
    ]
    assert rollouts and all(rollouts) and len(set(rollouts)) > 1, metrics  # calls carry their episode's id
    rewards = [m["train_mean_reward"] for m in metrics if "train_mean_reward" in m]
    # without the calls in output_tools no episode scores over 0.5, nor a step's mean
    assert rewards and max(rewards) > 0.5, metrics
    reply = served.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": QUESTION}], tools=[TOOL],
        temperature=0, max_tokens=96,
    ).choices[0]  # fmt: skip
    assert reply.finish_reason == "tool_calls" and reply.message.tool_calls[0].function.name == "calculator"
