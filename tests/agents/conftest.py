"""A real tool server on loopback (FastAPI on uvicorn, in a thread) for the HTTP tool and environment tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from tests.helpers import wait_for


@dataclass
class ToolServer:
    url: str
    attempts: Counter = field(default_factory=Counter)  # (route, rollout id) -> requests seen
    rollout_ids: list[str] = field(default_factory=list)  # X-Rollout-Id of every request, in order
    release: threading.Event = field(default_factory=threading.Event)  # lets /slow answer


def tool_app(state: ToolServer) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next):
        rid = request.headers.get("x-rollout-id", "")
        state.rollout_ids.append(rid)
        state.attempts[(request.url.path, rid)] += 1
        return await call_next(request)

    @app.post("/add")
    async def add(request: Request):
        args = await request.json()
        if not isinstance(args.get("a"), int) or not isinstance(args.get("b"), int):
            return PlainTextResponse("a and b must be integers", status_code=422)
        return PlainTextResponse(str(args["a"] + args["b"]))

    @app.post("/flaky/{failures}")
    async def flaky(failures: int, request: Request):
        # 503 for the first `failures` attempts of each rollout, then an answer
        n = state.attempts[(request.url.path, request.headers.get("x-rollout-id", ""))]
        if n <= failures:
            return PlainTextResponse("overloaded", status_code=503)
        return PlainTextResponse(f"ok on attempt {n}")

    @app.post("/slow")
    async def slow():
        await asyncio.to_thread(state.release.wait, 60)  # answers only once a test releases it
        return PlainTextResponse("late")

    @app.post("/trickle")
    async def trickle():
        async def chunks():
            for _ in range(200):  # a byte every 20 ms for 4 s: each read is quick, the whole answer is not
                yield b"x"
                await asyncio.sleep(0.02)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/big")
    async def big():
        return PlainTextResponse("x" * 2_000_000)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        # an OpenAI-compatible endpoint playing a user: satisfied once the agent says a number
        body = await request.json()
        said = body["messages"][-1]["content"]
        reply = "Thanks, DONE" if any(c.isdigit() for c in said) else "Please give me the number."
        message = {"role": "assistant", "content": reply}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
        }

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tool_server():
    """The tool server, started once per session: routes /add, /flaky/N, /slow, /trickle, /big, /v1/chat/completions."""
    port = free_port()
    state = ToolServer(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(tool_app(state), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=30, every=0.05)
    assert server.started, "the tool server did not start"
    yield state
    state.release.set()
    server.should_exit = True
    thread.join(30)
