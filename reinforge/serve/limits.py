"""The service's limits besides the key check: body sizes, per-key rate limits, a server a slow client
cannot hold. (The number of active jobs per key is checked where a job is created, ``serve/jobs.py``.)

* :class:`BodyLimit`: 413 in OpenAI's error shape for a body over its limit, from ``Content-Length`` before
  reading it, or counted as it streams (chunked). FastAPI's own ``max_body_size`` answers plain text.

* :class:`RateLimiter`: a token bucket per (key, route group), e.g. 120 chat requests a minute with bursts
  of that size; a refused call learns when the next token comes (``Retry-After``).
* :func:`uvicorn_limits`: uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) and caps the
  size of a request's head (``h11_max_incomplete_event_size``), but it waits for ever on a client that
  sends its request line and headers a byte at a time, or stops halfway through a body (it arms no timer
  until a first response is complete). :class:`GuardedH11Protocol` closes such a connection when a request's
  head has not arrived within ``request_timeout_s``, or its body stalls for as long.

>>> rl = RateLimiter()
>>> [rl.take("key-a", "chat", per_minute=2, now=0.0) for _ in range(3)]
[0.0, 0.0, 30.0]
>>> rl.take("key-b", "chat", per_minute=2, now=0.0), rl.take("key-a", "chat", per_minute=2, now=30.0)
(0.0, 0.0)
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import h11
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from reinforge.serve.errors import error_body


class BodyLimit:
    """ASGI middleware: ``upload_bytes`` for multipart uploads, ``json_bytes`` for every other body."""

    def __init__(self, app: ASGIApp, json_bytes: int, upload_bytes: int) -> None:
        self.app, self.json_bytes, self.upload_bytes = app, json_bytes, upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").startswith("multipart/form-data")
        limit = self.upload_bytes if upload else self.json_bytes
        detail = (
            f"Request body larger than this server's limit of {limit} bytes "
            f"(serve {'--max-upload-mb' if upload else '--max-json-mb'})"
        )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            too_large = JSONResponse(error_body(detail, code="request_too_large"), status_code=413)
            return await too_large(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # raised inside the app: its handlers answer 413 (serve/errors.py)
                raise HTTPException(413, detail)
            return message

        await self.app(scope, counted, send)


class RateLimiter:
    """Token buckets per (key id, route group): ``per_minute`` tokens, refilled evenly over the minute."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key_id: str, group: str, per_minute: int, now: float | None = None) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until the next token."""
        now = time.monotonic() if now is None else now
        rate = per_minute / 60.0  # tokens per second
        with self._lock:
            tokens, at = self._buckets.get((key_id, group), (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[(key_id, group)] = (tokens - 1.0, now)
                return 0.0
            self._buckets[(key_id, group)] = (tokens, now)
            return (1.0 - tokens) / rate


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline on each request's head and on each gap in its body."""

    request_timeout_s: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._guard = self.loop.call_later(self.request_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _too_slow(self) -> None:
        self._guard = None
        if not self.transport.is_closing():
            self.transport.close()  # connection_lost tells a waiting app: http.disconnect

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # the first request's head must come in time

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm()  # each gap in a body is bounded
        elif state is h11.IDLE:
            if self._guard is None:  # a head's deadline runs from its first byte: dripping does not extend it
                self._arm()
        else:
            self._disarm()  # the request is in: the app's time is not the client's

    def on_response_complete(self) -> None:
        self._disarm()  # an idle keep-alive connection is timeout_keep_alive's
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_limits(request_timeout_s: float, keep_alive_s: int, max_connections: int) -> dict[str, Any]:
    """``uvicorn.Config`` options: the guarded protocol, the keep-alive timeout, a cap on open connections
    (beyond it uvicorn answers 503) and on a request head's size."""
    protocol = type("GuardedH11", (GuardedH11Protocol,), {"request_timeout_s": request_timeout_s})
    return {
        "http": protocol,
        "timeout_keep_alive": keep_alive_s,
        "limit_concurrency": max_connections,
        "h11_max_incomplete_event_size": 64 * 1024,
    }
