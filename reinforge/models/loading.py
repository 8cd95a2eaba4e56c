"""Load policies and tokenizers from a local HF directory, a hub id (with internet), or ``tiny:<task>:<size>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reinforge.errors import ReinforgeError
from reinforge.models.tiny import parse_tiny_id, tiny_model

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_model_path(name: str) -> str:
    """A local directory stays as is; ``tiny:...`` builds/fetches a cached tiny model; else a hub id."""
    tiny = parse_tiny_id(name)
    if tiny is not None:
        return str(tiny_model(**tiny))
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ReinforgeError(f"{p}: not a model directory (no config.json)")
        return str(p)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ReinforgeError(f"model {name!r}: path not found")
    return name  # a hub id: transformers downloads it where there is internet


def pick_device(device: str | None = None) -> torch.device:
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise ReinforgeError(
            f"model {name!r}: cannot load tokenizer ({e.__class__.__name__}: {str(e)[:200]})"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(name: str, dtype: str | None = None, device: str | None = None, trainable: bool = False):
    """Return ``(model, tokenizer)`` ready for generation (eval mode unless ``trainable``)."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    dev = pick_device(device)
    torch_dtype = DTYPES.get(dtype or "", None) or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as e:
        raise ReinforgeError(
            f"model {name!r}: cannot load ({e.__class__.__name__}: {str(e)[:200]})"
        ) from None
    model.to(dev)
    model.train(trainable)
    if not trainable:
        model.requires_grad_(False)
    return model, load_tokenizer(name)
