"""Tool executors: a Python callable (trusted user code) or an HTTP endpoint in Agent RFT's shape.

Every call returns a :class:`ToolResult` whose ``text`` is what the model sees as the tool's answer;
only a tool server failing with 5xx past its retries raises (:class:`RolloutDiscarded`): the episode is
discarded and counted, never trained on with a broken tool's answer.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import time
import typing
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from reinforge.data.rft import TOOL_NAME, tool_schema_problem
from reinforge.errors import ConfigError, ReinforgeError

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
    """A Python function as a tool (trusted user code, run in this process).

    A sync function runs in a worker thread, a coroutine function on the loop; either is bounded by
    ``timeout``. Arguments that do not fit the signature are an ``invalid_call``; a raising function's
    error text is the result (``raised``); a result that is not a string is sent as JSON.

    >>> import asyncio
    >>> def add(a: int, b: int) -> int:
    ...     "Add two integers."
    ...     return a + b
    >>> tool = PythonTool(add)
    >>> tool.schema["function"]["parameters"]["properties"]["a"]
    {'type': 'integer'}
    >>> asyncio.run(tool.call({"a": 2, "b": 3}, "rollout-1")).text
    '5'
    >>> asyncio.run(tool.call({"a": 2}, "rollout-1")).error
    'invalid_call'
    """

    def __init__(self, fn: Any, name: str | None = None, schema: dict | None = None, timeout: float = 30.0):
        self.fn = fn
        self.name = name or fn.__name__
        self.schema: dict | None = schema or function_schema(fn, self.name)
        self.timeout = timeout
        self._signature = _signature(fn)

    @classmethod
    def from_ref(
        cls, ref: str, name: str | None = None, schema: dict | None = None, timeout: float = 30.0
    ) -> PythonTool:
        """Import ``"module:function"`` (ImportError/AttributeError name the reference)."""
        module, _, attr = ref.partition(":")
        if not module or not attr:
            raise ValueError(f"{ref!r} is not 'module:function'")
        fn = getattr(importlib.import_module(module), attr)
        if not callable(fn):
            raise ValueError(f"{ref!r} is not callable")
        return cls(fn, name=name, schema=schema, timeout=timeout)

    async def call(self, arguments: dict, rollout_id: str) -> ToolResult:
        t0 = time.perf_counter()
        try:
            if self._signature is not None:
                self._signature.bind(**arguments)
        except TypeError as e:
            return ToolResult(f"error: invalid arguments for {self.name}: {e}", "invalid_call", 0.0)
        try:
            if inspect.iscoroutinefunction(self.fn):
                out = await asyncio.wait_for(self.fn(**arguments), self.timeout)
            else:
                out = await asyncio.wait_for(asyncio.to_thread(self.fn, **arguments), self.timeout)
        except TimeoutError:
            return ToolResult(
                f"error: {self.name} timed out after {self.timeout:g} s", "timeout", self.timeout
            )
        except Exception as e:  # the tool's own failure is the model's observation, never a crash
            return ToolResult(f"error: {type(e).__name__}: {e}", "raised", time.perf_counter() - t0)
        text = out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, default=str)
        return ToolResult(text, None, time.perf_counter() - t0)


def _signature(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except ValueError:  # some builtins have none: their arguments are checked by the call itself
        return None


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


def function_schema(fn: Any, name: str) -> dict:
    """An OpenAI ``ChatCompletionTool`` from a function's signature and docstring's first line."""
    signature = _signature(fn)
    hints = typing.get_type_hints(fn) if signature else {}
    properties: dict = {}
    required = []
    for pname, param in (signature.parameters if signature else {}).items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        json_type = _JSON_TYPES.get(typing.get_origin(hints.get(pname)) or hints.get(pname))  # type: ignore[arg-type]
        properties[pname] = {"type": json_type} if json_type else {}
        if param.default is param.empty:
            required.append(pname)
    doc = (inspect.getdoc(fn) or "").strip().split("\n")[0]
    parameters = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": doc, "parameters": parameters}}


class HttpTool:
    """An HTTP endpoint in Agent RFT's shape ``{name, server_url, headers}``.

    Each call POSTs the arguments as a JSON object to ``server_url`` with the user's ``headers`` and
    ``X-Rollout-Id`` (one id per episode, so the endpoint can keep state). The rules:
    2xx: the body's text is the result. 4xx: the body's text is the result (``http_4xx``), for the model
    to correct itself. 5xx or no connection: retried ``retries`` times with exponential backoff, then
    :class:`RolloutDiscarded`. No answer within ``timeout``: ``timeout``. Arguments or a response over
    ``max_bytes``: ``payload_too_large`` (the response is read no further than the cap).
    """

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
        self.name = name
        self.server_url = server_url
        self.headers = dict(headers or {})
        self.schema = schema
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.retries = retries
        self.backoff = backoff
        self.source = source  # where the spec came from, for error messages

    async def call(self, arguments: dict, rollout_id: str) -> ToolResult:
        t0 = time.perf_counter()
        body = json.dumps(arguments, ensure_ascii=False).encode()
        if len(body) > self.max_bytes:
            text = f"error: arguments of {len(body)} bytes exceed the {self.max_bytes}-byte limit"
            return ToolResult(text, "payload_too_large", 0.0)
        headers = {**self.headers, "Content-Type": "application/json", ROLLOUT_HEADER: rollout_id}
        failure = ""
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    async with asyncio.timeout(self.timeout):  # the whole exchange, not each read
                        status, text, too_large = await self._post(client, body, headers)
                except (httpx.TimeoutException, TimeoutError):
                    text = f"error: {self.name} did not answer within {self.timeout:g} s"
                    return ToolResult(text, "timeout", time.perf_counter() - t0)
                except httpx.TransportError as e:
                    failure = f"{type(e).__name__}: {e}"
                    continue
                seconds = time.perf_counter() - t0
                if too_large:
                    text = f"error: the response of {self.name} exceeds the {self.max_bytes}-byte limit"
                    return ToolResult(text, "payload_too_large", seconds)
                if status < 400:
                    return ToolResult(text, None, seconds)
                if status < 500:
                    return ToolResult(text, "http_4xx", seconds)
                failure = f"HTTP {status}: {text[:200]}"
        raise RolloutDiscarded(
            f"tool {self.name!r} at {self.server_url} failed {self.retries + 1} times (last: {failure})"
        )

    async def _post(self, client: httpx.AsyncClient, body: bytes, headers: dict) -> tuple[int, str, bool]:
        """(status, text, over the cap): the response is read in chunks and dropped past the cap."""
        async with client.stream("POST", self.server_url, content=body, headers=headers) as response:
            chunks = bytearray()
            async for chunk in response.aiter_bytes():
                chunks += chunk
                if len(chunks) > self.max_bytes:
                    return response.status_code, "", True
            return response.status_code, chunks.decode(errors="replace"), False


ROLLOUT_HEADER = "X-Rollout-Id"
_HTTP_KEYS = {"name", "server_url", "headers", "timeout", "schema"}
_PYTHON_KEYS = {"name", "python", "timeout", "schema"}


def load_tools(specs: list[dict], source: str) -> dict[str, Tool]:
    """Tools from config specs; a bad spec is a ConfigError naming ``source``, the index and the key.

    ``{"name", "server_url", "headers"?, "timeout"?, "schema"?}`` is an HTTP tool (Agent RFT's shape);
    ``{"python": "module:function", "name"?, "timeout"?, "schema"?}`` a Python one.

    >>> sorted(load_tools([{"python": "textwrap:dedent", "name": "dedent"}], "config.yaml"))
    ['dedent']
    >>> load_tools([{"name": "calc"}], "config.yaml")
    Traceback (most recent call last):
    ...
    reinforge.errors.ConfigError: config.yaml: tools[0]: give 'server_url' (an HTTP tool) or 'python' ('module:function')
    """
    if not isinstance(specs, list):
        raise ConfigError(f"{source}: tools must be a list of tool specs, got {type(specs).__name__}")
    tools: dict[str, Tool] = {}
    for i, spec in enumerate(specs):
        where = f"{source}: tools[{i}]"
        tool = _load_one(spec, where)
        if tool.name in tools:
            raise ConfigError(f"{where}: a second tool named {tool.name!r}; tool names must be unique")
        tools[tool.name] = tool
    return tools


def _load_one(spec: Any, where: str) -> Tool:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be an object like {{name, server_url, headers}}")
    if ("server_url" in spec) == ("python" in spec):
        raise ConfigError(f"{where}: give 'server_url' (an HTTP tool) or 'python' ('module:function')")
    allowed = _HTTP_KEYS if "server_url" in spec else _PYTHON_KEYS
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {sorted(allowed)}")
    timeout = spec.get("timeout", 30.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(f"{where}.timeout: {timeout!r} must be a positive number of seconds")
    schema = spec.get("schema")
    problem = None if schema is None else tool_schema_problem(schema)
    if problem:
        raise ConfigError(f"{where}.schema{problem}")
    tool: Tool
    if "python" in spec:
        try:
            tool = PythonTool.from_ref(str(spec["python"]), spec.get("name"), schema, float(timeout))
        except (ImportError, AttributeError, ValueError) as e:
            raise ConfigError(
                f"{where}.python: cannot load {spec['python']!r} ({e}); give 'module:function'"
            ) from e
    else:
        tool = _http_tool(spec, schema, float(timeout), where)
    if not isinstance(tool.name, str) or not TOOL_NAME.fullmatch(tool.name):
        raise ConfigError(f"{where}.name: {tool.name!r} must match {TOOL_NAME.pattern} (OpenAI's tool names)")
    return tool


def _http_tool(spec: dict, schema: dict | None, timeout: float, where: str) -> HttpTool:
    name, url, headers = spec.get("name"), spec["server_url"], spec.get("headers", {})
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.server_url: {url!r} must be an http:// or https:// URL")
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError(f"{where}.headers: must be an object of string values")
    return HttpTool(name, url, headers, schema=schema, timeout=timeout, source=where)  # type: ignore[arg-type]


async def probe(tools: Any, timeout: float = 5.0) -> None:
    """Check every HTTP tool answers (any HTTP status counts) before training starts; the first that does
    not is one ReinforgeError naming it, its URL, its spec and the fix. ``tools``: a dict or list of tools."""
    http = [t for t in (tools.values() if isinstance(tools, dict) else tools) if isinstance(t, HttpTool)]

    async def one(tool: HttpTool) -> str | None:
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                await client.request("HEAD", tool.server_url, headers=tool.headers)
        except httpx.HTTPError as e:
            return (
                f"{tool.source}: tool {tool.name!r} at {tool.server_url} does not answer "
                f"({type(e).__name__}: {e or 'no response'}); start its server or fix server_url"
            )
        return None

    for failure in await asyncio.gather(*(one(t) for t in http)):
        if failure:
            raise ReinforgeError(failure)
