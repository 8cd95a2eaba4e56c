"""A local HF model directory as a judge: what :mod:`reinforge.graders.model_graders` calls when a
grader's ``model`` is a directory (loaded once per process), and the :class:`Completion` both return."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any


@dataclass
class Completion:
    """What a judge said, with the tokens it cost."""

    content: str | None
    refusal: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""


@lru_cache(maxsize=2)
def _local_model(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return tok, model, threading.Lock()


def local_complete(path: str, messages: list[dict], params: dict) -> Completion:
    """Greedy (or sampled, when temperature > 0) generation from a local HF model directory."""
    import torch

    tok, model, lock = _local_model(path)
    text_messages = [
        {
            "role": m["role"],
            "content": m["content"]
            if isinstance(m["content"], str)
            else "\n".join(p.get("text", "") for p in m["content"]),
        }
        for m in messages
    ]
    if getattr(tok, "chat_template", None):
        prompt = tok.apply_chat_template(text_messages, tokenize=False, add_generation_prompt=True)
    else:
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in text_messages) + "\nassistant:"
    enc = tok(prompt, return_tensors="pt")
    temperature = float(params.get("temperature", 0.0) or 0.0)
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": int(params.get("max_completion_tokens") or params.get("max_tokens") or 256),
        "do_sample": temperature > 0,
        "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    }
    if temperature > 0:
        gen_kwargs.update(temperature=temperature, top_p=float(params.get("top_p", 1.0)))
        if params.get("seed") is not None:
            torch.manual_seed(int(params["seed"]))
    with lock, torch.inference_mode():
        out = model.generate(**enc, **gen_kwargs)
    new = out[0, enc["input_ids"].shape[1] :]
    n_prompt, n_new = int(enc["input_ids"].shape[1]), int(new.shape[0])
    usage = {
        "prompt_tokens": n_prompt,
        "completion_tokens": n_new,
        "total_tokens": n_prompt + n_new,
        "cached_tokens": 0,
    }
    return Completion(tok.decode(new, skip_special_tokens=True), None, usage, Path(path).name)
