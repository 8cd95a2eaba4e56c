"""A local HF model directory as a judge: what :mod:`reinforge.graders.model_graders` calls when a
grader's ``model`` is a directory (loaded once per process, sampled through the built-in generation
backend with the model's chat template), and the :class:`Completion` both return."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from reinforge.models.chat import encode_prompt
from reinforge.models.generation import HFBackend, SamplingParams
from reinforge.models.loading import load_model


@dataclass
class Completion:
    """What a judge said, with the tokens it cost."""

    content: str | None
    refusal: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""


@lru_cache(maxsize=2)
def _local_model(path: str):
    model, tok = load_model(path, dtype="float32", device="cpu")
    return tok, HFBackend(model, tok), threading.Lock()


def local_complete(path: str, messages: list[dict], params: dict) -> Completion:
    """Greedy (or sampled, when temperature > 0) generation from a local HF model directory."""
    tok, backend, lock = _local_model(path)
    text_messages = [
        {
            "role": m["role"],
            "content": m["content"]
            if isinstance(m["content"], str)
            else "\n".join(p.get("text", "") for p in m["content"]),
        }
        for m in messages
    ]
    prompt = encode_prompt(tok, text_messages)
    temperature = float(params.get("temperature", 0.0) or 0.0)
    sampling = SamplingParams(
        temperature=temperature,
        top_p=float(params.get("top_p", 1.0)) if temperature > 0 else 1.0,
        max_tokens=int(params.get("max_completion_tokens") or params.get("max_tokens") or 256),
        seed=int(params["seed"]) if temperature > 0 and params.get("seed") is not None else None,
    )
    with lock:  # one judge model per process, shared by the grading threads
        out = backend.generate([prompt], sampling)
    n_prompt, n_new = len(prompt), len(out.completion_ids[0])
    usage = {
        "prompt_tokens": n_prompt,
        "completion_tokens": n_new,
        "total_tokens": n_prompt + n_new,
        "cached_tokens": 0,
    }
    return Completion(out.texts[0], None, usage, Path(path).name)
