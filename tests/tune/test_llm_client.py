"""The one LLM client: retries after Retry-After, bounded concurrency, accounting, cache, bad endpoints."""

from __future__ import annotations

import threading

import pytest

from reinforge.errors import ConfigError, ReinforgeError
from reinforge.tune.llm_client import LLMClient, LLMError
from tests.graders.fake_openai import FakeOpenAI
from tests.serve.helpers import free_port

HI = [{"role": "user", "content": "hi"}]


def test_retries_a_429_after_its_retry_after_then_accounts_tokens_and_cost():
    with FakeOpenAI() as server:
        server.replies = [(429, {"Retry-After": "1"}), (503, {"retry-after-ms": "200"})]
        client = LLMClient("m", server.base_url, price_per_1k_input=1.0, price_per_1k_output=2.0)
        reply = client.chat(HI, temperature=0.5)
        gaps = [b - a for a, b in zip(server.arrived, server.arrived[1:])]
    assert len(server.arrived) == 3  # two refusals, then the answer
    assert gaps[0] >= 0.95 and gaps[1] >= 0.19  # waited what each refusal asked for (not its own backoff)
    assert (reply.prompt_tokens, reply.completion_tokens) == (10, 5)
    assert reply.cost_usd == pytest.approx((10 * 1.0 + 5 * 2.0) / 1000)
    assert (client.totals.calls, client.totals.prompt_tokens) == (1, 10)
    assert client.totals.retries == 1  # the 503; a 429 that says when to come back is waited out


def test_a_rate_limit_is_waited_out_without_using_up_the_retries():
    with FakeOpenAI() as server:
        server.replies = [(429, {"Retry-After": "0"})] * 4  # more 429s than max_retries allows errors
        reply = LLMClient("m", server.base_url, max_retries=1).chat(HI)
    assert reply.texts and len(server.arrived) == 5
    with FakeOpenAI() as server:  # but not past rate_limit_wait_s
        server.replies = [(429, {"Retry-After": "0"})] * 4
        with pytest.raises(LLMError, match="RateLimitError 429"):
            LLMClient("m", server.base_url, max_retries=0, rate_limit_wait_s=0.5).chat(HI)


def test_gives_up_after_max_retries_and_does_not_retry_a_4xx():
    with FakeOpenAI() as server:
        server.replies = [(500, {"Retry-After": "0"})] * 3
        with pytest.raises(LLMError, match=r"failed after 3 attempts \(InternalServerError 500"):
            LLMClient("m", server.base_url, max_retries=2).chat(HI)
        server.replies = [(400, {})]
        with pytest.raises(LLMError, match=r"failed \(BadRequestError 400"):
            LLMClient("m", server.base_url, max_retries=2).chat(HI)
        assert len(server.arrived) == 4  # the 400 was sent once


def test_greedy_requests_come_from_the_cache_file(tmp_path):
    with FakeOpenAI() as server:
        client = LLMClient("m", server.base_url, cache=tmp_path / "study.db")
        first = client.chat(HI, temperature=0)
        again = LLMClient("m", server.base_url, cache=tmp_path / "study.db").chat(HI, temperature=0)
        sampled = client.chat(HI, temperature=0.7)  # a sampled reply is never reused
    assert len(server.requests) == 2
    assert again.cached and again.texts == first.texts and not sampled.cached


def test_map_keeps_order_and_at_most_concurrency_in_flight():
    client = LLMClient("m", "http://127.0.0.1:9/v1", concurrency=2)
    both_in = threading.Barrier(2, timeout=30)  # passes only when two calls run at once
    lock, active, peak = threading.Lock(), [0], [0]

    def call(x: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        both_in.wait()
        with lock:
            active[0] -= 1
        return x * x

    assert client.map(call, range(6)) == [0, 1, 4, 9, 16, 25]
    assert peak[0] == 2


def test_an_unreachable_endpoint_is_one_line_naming_it():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ReinforgeError) as e:
        LLMClient("m", url, timeout_s=5).check()
    assert str(e.value).startswith(f"objective.llm.base_url: {url} does not answer")
    assert "start the server or fix base_url" in str(e.value) and "\n" not in str(e.value)


def test_a_missing_key_variable_names_it(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_18", raising=False)
    with pytest.raises(ConfigError, match="api_key_env: the environment variable NO_SUCH_KEY_18 is not set"):
        LLMClient("m", "http://127.0.0.1:9/v1", api_key_env="NO_SUCH_KEY_18")


def test_the_key_comes_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("MY_KEY_18", "sk-test-18")
    with FakeOpenAI() as server:
        LLMClient("m", server.base_url, api_key_env="MY_KEY_18").chat(HI)
    assert server.requests[0]["auth"] == "Bearer sk-test-18"
