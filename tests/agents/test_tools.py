"""Tool executors: Python functions, and the HTTP endpoint rules against a real uvicorn tool server."""

from __future__ import annotations

import asyncio
import threading

import pytest

from reinforge.agents.tools import HttpTool, PythonTool, RolloutDiscarded, load_tools, probe
from reinforge.errors import ConfigError, ReinforgeError
from tests.agents.conftest import free_port


def run(coro):
    return asyncio.run(coro)


def divide(a: float, b: float = 1.0) -> float:
    """Divide a by b."""
    return a / b


def test_python_tool_schema_result_and_errors():
    tool = PythonTool(divide)
    fn = tool.schema["function"]
    assert fn["name"] == "divide" and fn["description"] == "Divide a by b."
    assert fn["parameters"] == {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a"],
    }
    assert run(tool.call({"a": 6, "b": 4}, "r")).text == "1.5"  # non-strings are sent as JSON
    raised = run(tool.call({"a": 1, "b": 0}, "r"))  # a raising tool: its error text is the answer
    assert (raised.error, raised.text) == ("raised", "error: ZeroDivisionError: division by zero")
    bad = run(tool.call({"c": 1}, "r"))  # arguments the signature does not take: nothing runs
    assert bad.error == "invalid_call" and "divide" in bad.text


def test_python_tool_timeout():
    release = asyncio.Event()

    async def wait_forever() -> str:
        await release.wait()  # never set: only the tool's timeout ends the call
        return "never"

    result = run(PythonTool(wait_forever, timeout=0.05).call({}, "r"))
    assert result.error == "timeout" and "timed out" in result.text


def test_http_tool_answers_and_sends_the_rollout_id(tool_server):
    tool = HttpTool("add", f"{tool_server.url}/add", headers={"Authorization": "Bearer k"})
    result = run(tool.call({"a": 2, "b": 40}, "rollout-ok"))
    assert (result.text, result.error) == ("42", None) and result.seconds > 0
    assert tool_server.attempts[("/add", "rollout-ok")] == 1  # the server saw the episode's id


def test_http_tool_4xx_text_is_the_answer(tool_server):
    result = run(HttpTool("add", f"{tool_server.url}/add").call({"a": "2"}, "rollout-4xx"))
    assert (result.text, result.error) == ("a and b must be integers", "http_4xx")
    assert tool_server.attempts[("/add", "rollout-4xx")] == 1  # never retried


def test_http_tool_retries_5xx_then_answers(tool_server):
    tool = HttpTool("f", f"{tool_server.url}/flaky/2", backoff=0.001)
    result = run(tool.call({}, "rollout-flaky"))
    assert (result.text, result.error) == ("ok on attempt 3", None)
    assert tool_server.attempts[("/flaky/2", "rollout-flaky")] == 3


def test_http_tool_discards_the_rollout_after_3_retries(tool_server):
    tool = HttpTool("f", f"{tool_server.url}/flaky/99", backoff=0.001)
    with pytest.raises(RolloutDiscarded, match=r"failed 4 times \(last: HTTP 503: overloaded\)"):
        run(tool.call({}, "rollout-down"))
    assert tool_server.attempts[("/flaky/99", "rollout-down")] == 4  # the first try and 3 retries


def test_http_tool_timeout(tool_server):
    result = run(HttpTool("s", f"{tool_server.url}/slow", timeout=0.2).call({}, "rollout-slow"))
    assert result.error == "timeout" and "0.2 s" in result.text
    assert tool_server.attempts[("/slow", "rollout-slow")] == 1  # a timeout is not retried


def test_http_tool_timeout_bounds_the_whole_answer(tool_server):
    # bytes keep coming, each well within the timeout: only a bound on the whole exchange stops it
    result = run(HttpTool("t", f"{tool_server.url}/trickle", timeout=0.3).call({}, "rollout-trickle"))
    assert result.error == "timeout" and result.seconds < 3


def test_http_tool_payload_caps_each_way(tool_server):
    tool = HttpTool("add", f"{tool_server.url}/add", max_bytes=1000)
    sent = run(tool.call({"a": "x" * 2000}, "rollout-cap-out"))
    assert sent.error == "payload_too_large" and "1000-byte" in sent.text
    assert tool_server.attempts[("/add", "rollout-cap-out")] == 0  # nothing was sent
    got = run(HttpTool("big", f"{tool_server.url}/big").call({}, "rollout-cap-in"))  # 2 MB > the 1 MB default
    assert got.error == "payload_too_large" and len(got.text) < 200


def test_http_tool_no_connection_discards(tool_server):
    tool = HttpTool("gone", f"http://127.0.0.1:{free_port()}/x", backoff=0.001)
    with pytest.raises(RolloutDiscarded, match="ConnectError"):
        run(tool.call({}, "r"))


def test_probe(tool_server):
    alive = load_tools([{"name": "add", "server_url": f"{tool_server.url}/add"}], "job.yaml")
    run(probe(alive))  # any HTTP answer counts (HEAD on a POST route is a 405)
    dead_url = f"http://127.0.0.1:{free_port()}/calc"
    dead = load_tools(
        [{"python": "tests.agents.test_tools:divide"}, {"name": "calc", "server_url": dead_url}], "job.yaml"
    )
    with pytest.raises(ReinforgeError) as e:
        run(probe(dead))
    message = str(e.value)
    assert message.startswith(f"job.yaml: tools[1]: tool 'calc' at {dead_url} does not answer (ConnectError")
    assert message.endswith("start its server or fix server_url") and "\n" not in message


@pytest.mark.parametrize(
    "spec, error",
    [
        ({"name": "calc"}, "tools[0]: give 'server_url' (an HTTP tool) or 'python'"),  # neither kind
        ({"name": "c", "server_url": "http://x", "python": "m:f"}, "tools[0]: give 'server_url'"),  # both
        ({"name": "c", "server_url": "ftp://x"}, "tools[0].server_url: 'ftp://x' must be an http"),
        ({"name": "a b", "server_url": "http://x"}, "tools[0].name: 'a b' must match"),  # OpenAI's names
        (
            {"name": "c", "server_url": "http://x", "headers": {"k": 1}},
            "tools[0].headers: must be an object of str",
        ),
        ({"name": "c", "server_url": "http://x", "timeout": 0}, "tools[0].timeout: 0 must be a positive"),
        ({"name": "c", "server_url": "http://x", "retry": 3}, "tools[0]: unknown key 'retry'"),
        ({"python": "no_such_module:f"}, "tools[0].python: cannot load 'no_such_module:f'"),
        ({"python": "divide"}, "tools[0].python: cannot load 'divide'"),  # not module:function
        ({"python": "math:pi"}, "tools[0].python: cannot load 'math:pi' ('math:pi' is not callable)"),
        ({"name": "c", "server_url": "http://x", "schema": {"type": "function"}}, "tools[0].schema: must be"),
        ("calc", "tools[0]: must be an object"),
        (
            {"python": "tests.agents.test_tools:divide", "name": "di vide"},
            "tools[0].name: 'di vide' must match",
        ),
    ],
)
def test_load_tools_errors_name_the_source_and_key(spec, error):
    with pytest.raises(ConfigError) as e:
        load_tools([spec], "job.yaml")
    assert str(e.value).startswith(f"job.yaml: {error}")


def test_load_tools_kinds_and_unique_names():
    tools = load_tools(
        [
            {"python": "tests.agents.test_tools:divide", "name": "div"},
            {"name": "calc", "server_url": "http://h/c"},
        ],
        "job.yaml",
    )
    assert isinstance(tools["div"], PythonTool) and isinstance(tools["calc"], HttpTool)
    timed = load_tools([{"python": "tests.agents.test_tools:divide", "timeout": 2}], "job.yaml")
    assert timed["divide"].timeout == 2  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"tools\[1\]: a second tool named 'c'"):
        load_tools([{"name": "c", "server_url": "http://h"}] * 2, "job.yaml")


def test_sync_python_tools_run_concurrently():
    # two blocking calls meet at a barrier: they can only pass it if both run at once (in worker threads)
    barrier = threading.Barrier(2, timeout=30)

    def meet() -> str:
        barrier.wait()
        return "met"

    tool = PythonTool(meet)

    async def both():
        return await asyncio.gather(tool.call({}, "a"), tool.call({}, "b"))

    assert [r.text for r in run(both())] == ["met", "met"]
