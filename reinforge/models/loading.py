"""Load policies and tokenizers from a local HF directory or a hub id (with internet).

``tiny:<task>:<size>`` ids are built by :mod:`reinforge.train.warmup` (the warm-up trains on a task's
data): code above train/ loads by id through ``reinforge.train.warmup.load_model``.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from huggingface_hub import try_to_load_from_cache
from transformers import AutoModelForCausalLM, AutoTokenizer

from reinforge.errors import ReinforgeError

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_model_path(name: str) -> str:
    """A local directory stays as is; else a hub id. Tiny ids must be resolved before (train.warmup)."""
    if name.startswith("tiny:"):
        raise ReinforgeError(
            f"model {name!r}: a tiny id reached models.loading unresolved; load it through "
            "reinforge.train.warmup.load_model (or pass reinforge.train.warmup.resolve_model's directory)"
        )
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ReinforgeError(f"{p}: not a model directory (no config.json)")
        return str(p)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ReinforgeError(f"model {name!r}: path not found")
    return hub_model(name)


def hub_model(name: str) -> str:
    """A hub id, checked in a second rather than after a minute of download retries: offline (no
    network, or HF_HUB_OFFLINE=1) it must be in the Hugging Face cache; then its cached snapshot loads."""
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id
        raise ReinforgeError(
            f"model {name!r}: no such directory, and not a hub id (owner/name); give a local HF model "
            "directory, a hub id, or tiny:<task>:<size>"
        ) from None
    snapshot = str(Path(cached).parent) if isinstance(cached, str) else None
    fix = "give a local HF model directory or tiny:<task>:<size>, or download it where there is internet"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        if snapshot:
            return snapshot
        raise ReinforgeError(
            f"model {name!r}: no such directory and not in the Hugging Face cache, and "
            f"HF_HUB_OFFLINE is set; {fix}"
        )
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    if _behind_proxy() or _reachable(endpoint.hostname or "", port):
        return name  # transformers downloads it (or finds it in its cache)
    if snapshot:
        return snapshot
    raise ReinforgeError(
        f"model {name!r}: no such directory and not in the Hugging Face cache, and {endpoint.hostname} "
        f"cannot be reached (no network); {fix}"
    )


def _behind_proxy() -> bool:
    return any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))


@functools.lru_cache(maxsize=8)
def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout`` (name lookup included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)  # a name lookup can hang past the socket's own timeout
    return bool(result and result[0])


def _one_line(e: Exception) -> str:
    return f"{e.__class__.__name__}: {' '.join(str(e).split())}"


def pick_device(device: str | None = None) -> torch.device:
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(name: str) -> Any:
    path = resolve_model_path(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise ReinforgeError(f"model {name!r}: cannot load its tokenizer ({_one_line(e)})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(name: str, dtype: str | None = None, device: str | None = None, trainable: bool = False):
    """Return ``(model, tokenizer)`` ready for generation (eval mode unless ``trainable``)."""
    path = resolve_model_path(name)
    dev = pick_device(device)
    torch_dtype = DTYPES.get(dtype or "", None) or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as e:
        raise ReinforgeError(f"model {name!r}: cannot load ({_one_line(e)})") from None
    model.to(dev)  # type: ignore[arg-type]  # transformers' stub types to()'s first argument as the model
    model.train(trainable)
    if not trainable:
        model.requires_grad_(False)
    return model, load_tokenizer(name)
