"""``/v1/chat/completions``: OpenAI's chat completions (``n`` choices, ``seed``, SSE streaming) from any
model a key may use: built-in tiny models, ``--model`` directories, its fine-tuned models and checkpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from reinforge.agents.formats import format_for
from reinforge.errors import ReinforgeError
from reinforge.models.chat import encode_prompt
from reinforge.models.generation import SamplingParams
from reinforge.serve.chat_tools import (
    NONE,
    call_prefix,
    check_tool_choice,
    check_tools,
    reply_message,
    template_message,
)
from reinforge.serve.context import Owner, Service, Svc, rate_limited
from reinforge.serve.db import new_id
from reinforge.serve.errors import APIError, documented
from reinforge.serve.inference import LoadedModel, completion_response
from reinforge.serve.models import resolve_model

router = APIRouter(prefix="/v1/chat", responses=documented(400, 401, 403, 404, 413, 429))


class ChatCompletion(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # strict: "1" is not n=1, as the schema says
    model: str
    messages: list[dict[str, Any]]
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int = 1
    stream: bool = False
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI ChatCompletionTool objects
    tool_choice: str | dict[str, Any] | None = None  # none | auto | required | {"type": "function", ...}
    parallel_tool_calls: bool = True


async def loaded(svc: Service, owner: str, model_id: str) -> LoadedModel:
    if model_id.startswith("ft:"):  # a database look-up
        path = await run_in_threadpool(resolve_model, svc, owner, model_id)
    else:
        path = resolve_model(svc, owner, model_id)
    if path is None:
        raise APIError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    lm = svc.pool.cached(path)
    if lm is not None:
        return lm
    try:
        return await run_in_threadpool(svc.pool.get, path)
    except ReinforgeError as e:
        raise APIError(400, str(e), param="model") from None


@router.post(
    "/completions",
    dependencies=[rate_limited("chat", "chat_per_minute")],
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "A completion, or its chunks with stream"}
    },
)
async def chat(req: ChatCompletion, svc: Svc, owner: Owner):
    if not req.messages:
        raise APIError(400, "messages: must be a non-empty list", param="messages")
    if not 1 <= req.n <= 16:
        raise APIError(400, "n: must be between 1 and 16", param="n")
    choice = check_tool_choice(req.tool_choice, check_tools(req.tools))
    tools = req.tools if choice != NONE else None
    msgs = [template_message(m, f"messages[{i}]") for i, m in enumerate(req.messages)]
    lm = await loaded(svc, owner, req.model)
    fmt = format_for(lm.tokenizer)
    prefix = call_prefix(fmt, choice)  # required/named: the reply starts as a call
    try:
        ids = encode_prompt(lm.tokenizer, msgs, tools=tools)
        ids += lm.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
    except Exception as e:  # noqa: BLE001 - a template error is the request's fault
        raise APIError(400, f"messages: cannot render ({e})", param="messages") from None
    max_tokens = req.max_completion_tokens or req.max_tokens or 64
    params = SamplingParams(
        temperature=req.temperature, top_p=req.top_p, max_tokens=max_tokens, n=req.n, seed=req.seed
    )
    if req.stream and tools is None:
        return StreamingResponse(sse_chunks(lm, req.model, ids, params), media_type="text/event-stream")
    out = await lm.submit_async(ids, params)
    messages = None
    if tools is not None:  # OpenAI's tool_calls; a streamed reply is sent whole, as chunks, once parsed
        replies = [
            reply_message(fmt, prefix + t, fr, req.parallel_tool_calls)
            for t, fr in zip(out.texts, out.finish_reasons)
        ]
        if req.stream:
            return StreamingResponse(replay_chunks(req.model, replies), media_type="text/event-stream")
        messages = replies
    return completion_response(req.model, out, len(ids), messages)


def chunk_writer(model_id: str):
    """``chunk(index, delta, finish)`` -> one SSE event of OpenAI's ``chat.completion.chunk``."""
    cid, created = f"chatcmpl-{new_id('s')[2:]}", int(time.time())

    def chunk(index: int, delta: dict, finish: str | None) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_id,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return f"data: {json.dumps(body)}\n\n"

    return chunk


def replay_chunks(model_id: str, replies: list[tuple[dict, str]]) -> Iterator[str]:
    """Finished replies as chunks: per choice a role delta, its content, its tool calls, its finish."""
    chunk = chunk_writer(model_id)
    for i, (message, finish) in enumerate(replies):
        yield chunk(i, {"role": "assistant", "content": ""}, None)
        if message.get("content"):
            yield chunk(i, {"content": message["content"]}, None)
        calls = [{"index": j, **c} for j, c in enumerate(message.get("tool_calls") or [])]
        if calls:
            yield chunk(i, {"tool_calls": calls}, None)
        yield chunk(i, {}, finish)
    yield "data: [DONE]\n\n"


def sse_chunks(lm: LoadedModel, model_id: str, ids: list[int], params: SamplingParams) -> Iterator[str]:
    """OpenAI's ``chat.completion.chunk`` events: a role delta per choice, text deltas, finishes, [DONE]."""
    chunk = chunk_writer(model_id)
    yield from (chunk(i, {"role": "assistant", "content": ""}, None) for i in range(params.n))
    for i, text, finish in lm.stream(ids, params):
        if text:
            yield chunk(i, {"content": text}, None)
        if finish:
            yield chunk(i, {}, finish)
    yield "data: [DONE]\n\n"
