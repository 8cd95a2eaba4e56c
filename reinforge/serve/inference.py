"""Chat completions for the service: a pool of loaded models, micro-batched sampling, token streaming.

Concurrent requests for one model are gathered by a single thread into one batched ``HFBackend.generate``
call (requests with the same temperature/top_p/n share a batch), which is what keeps p99 latency low
under many simultaneous clients. Streaming requests decode token by token (their ``n`` choices together)
with their own KV cache.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from reinforge.models.generation import (
    Generations,
    HFBackend,
    SamplingParams,
    cache_kwargs,
    left_pad,
    sample_next,
)

MAX_BATCH = 64  # completions per batched generate call


@dataclass
class ChatRequest:
    prompt_ids: list[int]
    params: SamplingParams
    future: Future = field(default_factory=Future)


class LoadedModel:
    """One model in memory plus the thread that batches its requests."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.backend = HFBackend(model, tokenizer)
        self.requests: queue.Queue[ChatRequest] = queue.Queue()
        threading.Thread(target=self._serve_batches, daemon=True).start()

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> Generations:
        req = ChatRequest(prompt_ids, params)
        self.requests.put(req)
        return req.future.result()

    async def submit_async(self, prompt_ids: list[int], params: SamplingParams) -> Generations:
        """Like ``submit`` but awaits the batch without holding a thread of the server's pool."""
        import asyncio

        req = ChatRequest(prompt_ids, params)
        self.requests.put(req)
        return await asyncio.wrap_future(req.future)

    def _serve_batches(self) -> None:
        while True:
            pending = [self.requests.get()]
            while len(pending) < MAX_BATCH:  # take what already waits; never delay the first request
                try:
                    pending.append(self.requests.get_nowait())
                except queue.Empty:
                    break
            self.serve_pending(pending)

    def serve_pending(self, pending: list[ChatRequest]) -> None:
        """Answer ``pending`` in batches of requests with the same sampling settings. A seeded request
        (``seed=0`` too) runs alone: its sample must not depend on what other clients asked meanwhile."""
        groups: dict[tuple, list[ChatRequest]] = {}
        for r in pending:
            p = r.params
            alone = id(r) if p.seed is not None else 0
            groups.setdefault((p.temperature, p.top_p, p.n, p.seed, alone), []).append(r)
        for reqs in groups.values():
            self._run_group(reqs)

    def _run_group(self, reqs: list[ChatRequest]) -> None:
        p0 = reqs[0].params
        params = SamplingParams(
            temperature=p0.temperature,
            top_p=p0.top_p,
            max_tokens=max(r.params.max_tokens for r in reqs),
            n=p0.n,
            seed=p0.seed,
        )
        try:
            out = self.backend.generate([r.prompt_ids for r in reqs], params)
        except Exception as e:  # one failed batch answers every request in it
            for r in reqs:
                r.future.set_exception(e)
            return
        n = params.n
        for i, r in enumerate(reqs):
            sl = slice(i * n, (i + 1) * n)
            comp, lps, reasons = out.completion_ids[sl], out.logprobs[sl], out.finish_reasons[sl]
            m = r.params.max_tokens
            cut = [c[:m] for c in comp]
            reasons = [fr if len(c) <= m else "length" for c, fr in zip(comp, reasons)]
            texts = self.tokenizer.batch_decode(cut, skip_special_tokens=True)
            r.future.set_result(Generations(cut, [lp[:m] for lp in lps], texts, reasons, n=n))

    @torch.no_grad()
    def stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[tuple[int, str, str | None]]:
        """Yield ``(choice, text_delta, finish_reason)`` per token of each of the ``params.n`` choices,
        decoded together; a choice's last item carries its finish reason."""
        from transformers import DynamicCache

        model, tok, n = self.model, self.tokenizer, params.n
        device = next(model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(params.seed) if params.seed is not None else None
        ids, mask = left_pad([prompt_ids] * n, self.backend.pad_id, device)
        cache = DynamicCache()
        out = model(
            input_ids=ids, attention_mask=mask, **cache_kwargs(model, cache), use_cache=True, logits_to_keep=1
        )
        produced: list[list[int]] = [[] for _ in range(n)]
        shown = [""] * n
        finished = [False] * n
        eos = set(self.backend.eos_ids)
        for _ in range(params.max_tokens):
            nxt, _ = sample_next(out.logits[:, -1, :], params.temperature, params.top_p, gen)  # (n,)
            for i, t in enumerate(nxt.tolist()):
                if finished[i]:
                    continue  # a finished choice's row is still decoded with the others, and ignored
                if t in eos:
                    finished[i] = True
                    yield i, "", "stop"
                    continue
                produced[i].append(t)
                text = tok.decode(produced[i], skip_special_tokens=True)
                yield i, text[len(shown[i]) :], None
                shown[i] = text
            if all(finished):
                return
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            out = model(
                input_ids=nxt[:, None], attention_mask=mask, **cache_kwargs(model, cache), use_cache=True
            )
        for i in range(n):
            if not finished[i]:
                yield i, "", "length"


class ModelPool:
    """Loaded models by resolved path, least recently used evicted beyond ``capacity``."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self.models: OrderedDict[str, LoadedModel] = OrderedDict()
        self.lock = threading.Lock()
        self.loading: dict[str, threading.Lock] = {}

    def cached(self, path: str) -> LoadedModel | None:
        """The loaded model, or None; never blocks on a load."""
        return self.models.get(path)

    def get(self, path: str) -> LoadedModel:
        with self.lock:
            if path in self.models:
                self.models.move_to_end(path)
                return self.models[path]
            load_lock = self.loading.setdefault(path, threading.Lock())
        with load_lock:  # one load per model even when many requests arrive together
            with self.lock:
                if path in self.models:
                    return self.models[path]
            from reinforge.train.warmup import load_model

            model, tok = load_model(path)
            lm = LoadedModel(model, tok)
            with self.lock:
                self.models[path] = lm
                while len(self.models) > self.capacity:
                    self.models.popitem(last=False)
            return lm


def completion_response(
    model_id: str, out: Generations, n_prompt: int, replies: list[tuple[dict, str]] | None = None
) -> dict:
    """OpenAI's ``chat.completion`` object; ``replies``: each choice's (message, finish_reason) when not
    its plain text (a reply with tool calls)."""
    n_completion = sum(len(c) for c in out.completion_ids)
    if replies is None:
        replies = [({"role": "assistant", "content": t}, fr) for t, fr in zip(out.texts, out.finish_reasons)]
    return {
        "id": f"chatcmpl-{int(time.time() * 1e6):x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {"index": i, "message": message, "finish_reason": fr, "logprobs": None}
            for i, (message, fr) in enumerate(replies)
        ],
        "usage": {
            "prompt_tokens": n_prompt,
            "completion_tokens": n_completion,
            "total_tokens": n_prompt + n_completion,
        },
    }
