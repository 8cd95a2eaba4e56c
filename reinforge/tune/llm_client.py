"""One client for every objective that calls an LLM: any OpenAI-compatible endpoint, or a local model.

``base_url`` is OpenAI, vLLM, Ollama or ``reinforge serve`` (the official ``openai`` package talks to
it); without one, ``model`` is a local HF directory or a ``tiny:`` id run in this process. The key is
read from the environment variable ``api_key_env`` names (never from the YAML). At most
``concurrency`` requests are in flight (:meth:`LLMClient.map`); a connection error, a timeout, 408,
409, 429 or 5xx is retried ``max_retries`` times, after the server's ``Retry-After`` when it sends one
(else exponential backoff; the rules are the model graders', ``graders/retries.py``); a 429 with a
``Retry-After`` is waited out without using up a retry, up to ``rate_limit_wait_s`` per request. Every
:class:`Reply` carries its tokens, latency and cost (``price_per_1k_input``/``_output``), and
:attr:`LLMClient.totals` adds them up. A greedy request (temperature 0) is answered from the study's
cache file when the same one was sent before; :class:`~reinforge.tune.objectives.ExampleObjective`
caches each graded example on top of that.

:meth:`LLMClient.check` reaches the endpoint once before a study starts, so a wrong URL is one line
instead of a study of failed trials.

>>> LLMClient("gpt-4o-mini", base_url="http://127.0.0.1:9/v1", price_per_1k_input=0.15).cost(2000, 0)
0.3
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reinforge.errors import ConfigError, ReinforgeError
from reinforge.tune.fingerprint import digest
from reinforge.tune.generation import cached_model
from reinforge.tune.storage import Storage


class LLMError(ReinforgeError):
    """The endpoint failed past its retries, or refused the request (4xx)."""


@dataclass
class Reply:
    """One chat completion: the first choice's message (``content``, ``tool_calls``), every choice's
    text (``n`` > 1: votes), and what it cost."""

    message: dict
    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False

    @property
    def tool_calls(self) -> list[dict]:
        return self.message.get("tool_calls") or []


@dataclass
class Totals:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    retries: int = 0
    cache_hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, r: Reply) -> None:
        with self.lock:
            if r.cached:
                self.cache_hits += 1
                return
            self.calls += 1
            self.prompt_tokens += r.prompt_tokens
            self.completion_tokens += r.completion_tokens
            self.latency_s += r.latency_s
            self.cost_usd += r.cost_usd


class LLMClient:
    """Chat completions with retries, bounded concurrency, accounting and a cache (see the module)."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 4,
        max_retries: int = 4,
        timeout_s: float = 60.0,
        backoff_s: float = 0.5,
        rate_limit_wait_s: float = 300.0,
        price_per_1k_input: float = 0.0,
        price_per_1k_output: float = 0.0,
        cache: str | Path | Storage | None = None,
        source: str = "objective.llm",
    ):
        if concurrency < 1:
            raise ConfigError(f"{source}.concurrency: {concurrency} must be >= 1")
        self.model, self.base_url, self.api_key_env, self.source = model, base_url, api_key_env, source
        self.concurrency, self.max_retries, self.timeout_s = concurrency, max_retries, timeout_s
        self.backoff_s, self.rate_limit_wait_s = backoff_s, rate_limit_wait_s
        self.prices = (price_per_1k_input, price_per_1k_output)
        if api_key_env and base_url and not os.environ.get(api_key_env):
            raise ConfigError(
                f"{source}.api_key_env: the environment variable {api_key_env} is not set; "
                f"export {api_key_env}=<your key> or name another variable"
            )
        self.cache_path = cache if not isinstance(cache, Storage) else None
        self._cache = cache if isinstance(cache, Storage) else None
        self._client: Any = None
        self.totals = Totals()

    def __getstate__(self) -> dict:  # each worker process opens its own connection and cache handle
        return {**self.__dict__, "_client": None, "_cache": None, "totals": Totals()}

    def fingerprint(self) -> dict:
        """What the replies depend on besides the request (the key is not part of it)."""
        return {"base_url": self.base_url, "model": self.model}

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]) / 1000

    @property
    def client(self) -> Any:
        if self._client is None:
            from openai import OpenAI  # ~1 s to import: only studies that call an endpoint need it

            key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
            self._client = OpenAI(
                base_url=self.base_url, api_key=key or "EMPTY", max_retries=0, timeout=self.timeout_s
            )
        return self._client

    def check(self) -> None:
        """Reach the endpoint once (``GET /models``); one line naming the URL and the fix if it does not
        answer or refuses the key. A local model is loaded instead (a missing one fails here too)."""
        if self.base_url is None:
            cached_model(self.model)
            return
        import openai

        try:
            self.client.with_options(timeout=min(self.timeout_s, 10.0)).models.list()
        except openai.APIConnectionError as e:
            raise ReinforgeError(
                f"{self.source}.base_url: {self.base_url} does not answer ({e.__cause__ or e}); "
                "start the server or fix base_url"
            ) from None
        except openai.AuthenticationError as e:
            raise ReinforgeError(
                f"{self.source}: {self.base_url} refused the key ({e.status_code}); "
                f"set {self.api_key_env or 'api_key_env'} to a valid key"
            ) from None
        except openai.APIStatusError:
            pass  # it answered: some servers have no /models

    # -- requests
    def chat(self, messages: list[dict], **options: Any) -> Reply:
        """One chat completion. ``options``: temperature, top_p, max_tokens, n, tools, tool_choice,
        response_format, seed (as OpenAI's API)."""
        options = {k: v for k, v in options.items() if v is not None}
        key, cache = None, self.cache
        if float(options.get("temperature", 1.0)) == 0.0 and cache is not None:
            key = "llm:" + digest([self.fingerprint(), messages, options])
            hit = cache.cache_get(key)
            if hit is not None:
                reply = Reply(**{**hit, "cached": True})
                self.totals.add(reply)
                return reply
        t0 = time.perf_counter()
        reply = self._local(messages, options) if self.base_url is None else self._remote(messages, options)
        reply.latency_s = time.perf_counter() - t0
        reply.cost_usd = self.cost(reply.prompt_tokens, reply.completion_tokens)
        if key is not None and cache is not None:
            cache.cache_put(key, {k: v for k, v in reply.__dict__.items() if k != "cached"})
        self.totals.add(reply)
        return reply

    @property
    def cache(self) -> Storage | None:
        if self._cache is None and self.cache_path is not None:
            self._cache = Storage(self.cache_path)
        return self._cache

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``[fn(x) for x in items]`` with at most ``concurrency`` running at once, in order."""
        items = list(items)
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _remote(self, messages: list[dict], options: dict) -> Reply:
        from reinforge.graders.retries import retry_after_s, retry_delay, transient

        options = dict(options)
        model = options.pop("model", self.model)
        attempt, rate_waited = 0, 0.0
        while True:
            try:
                r = self.client.chat.completions.create(model=model, messages=messages, **options)
                break
            except Exception as e:
                status = getattr(e, "status_code", None)
                # a rate limit that says when to come back is waited out (up to rate_limit_wait_s in
                # all) without using up a retry: several clients share one per-key bucket
                asked = retry_after_s(getattr(getattr(e, "response", None), "headers", None))
                if status == 429 and asked is not None and rate_waited + asked <= self.rate_limit_wait_s:
                    wait = max(asked, 0.25)  # "retry after 0 s" must not spin
                    rate_waited += wait
                    time.sleep(wait)
                    continue
                if not transient(e) or attempt == self.max_retries:
                    raise LLMError(
                        f"{self.source}: {self.base_url} model {model!r} failed"
                        f"{f' after {attempt + 1} attempts' if transient(e) else ''}"
                        f" ({type(e).__name__}{f' {status}' if status else ''}: {_first_line(e)})"
                    ) from None
                with self.totals.lock:
                    self.totals.retries += 1
                time.sleep(retry_delay(e, attempt, self.backoff_s))
                attempt += 1
        message = r.choices[0].message.model_dump(exclude_none=True)
        message.setdefault("content", "")
        usage = r.usage
        return Reply(
            message,
            [c.message.content or "" for c in r.choices],
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )

    def _local(self, messages: list[dict], options: dict) -> Reply:
        """The local-model path: the built-in generation backend, tool calls parsed as the template
        teaches them (``agents.formats``)."""
        from reinforge.agents.formats import format_for
        from reinforge.models.chat import encode_prompt
        from reinforge.models.generation import HFBackend, SamplingParams

        model, tok = cached_model(options.get("model") or self.model)
        tools = options.get("tools")
        ids = encode_prompt(tok, messages, tools=tools)
        sp = SamplingParams(
            temperature=float(options.get("temperature", 1.0)),
            top_p=float(options.get("top_p", 1.0)),
            max_tokens=int(options.get("max_tokens") or 64),
            n=int(options.get("n", 1)),
            seed=options.get("seed"),
        )
        out = HFBackend(model, tok).generate([ids], sp)
        turn = format_for(tok).parse(out.texts[0]) if tools else None
        message = turn.to_message() if turn else {"role": "assistant", "content": out.texts[0]}
        return Reply(message, list(out.texts), len(ids) * sp.n, sum(len(c) for c in out.completion_ids))


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]
