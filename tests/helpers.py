"""Plain helpers shared by test modules (no test module imports another): tiny models built in memory or on
disk, small data rows, and a poll loop for state that changes in another thread or process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from reinforge.data.preferences import Ranking

T = TypeVar("T")

# the same small shape in both layouts; Qwen2 adds q/k/v biases, grouped-query attention (2 KV heads
# for 4 query heads) and tied embeddings
ARCHS = {
    "llama": (LlamaConfig, LlamaForCausalLM, {"num_key_value_heads": 4, "tie_word_embeddings": False}),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {"num_key_value_heads": 2, "tie_word_embeddings": True}),
}


def tiny_lm(seed: int, arch: str = "llama"):
    """A random 2-layer model over a 23-token vocabulary (pairs with ``word_tokenizer``), in memory."""
    config_class, model_class, layout = ARCHS[arch]
    torch.manual_seed(seed)
    cfg = config_class(
        vocab_size=23,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        **layout,
    )
    return model_class(cfg).float()


def word_tokenizer():
    """Words ``t0`` .. ``t22``: pad ``t0``, eos ``t2``."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(23)}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0")),
        pad_token="t0",
        eos_token="t2",
    )


def micro_model(path: Path, seed: int = 0) -> Path:
    """A randomly initialised micro Llama with the tiny char tokenizer, saved at ``path`` (~0.01 s per forward)."""
    from reinforge.models.tiny import build_tokenizer, save_tiny

    tok = build_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return save_tiny(LlamaForCausalLM(cfg), tok, path)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prompt_rows(n: int) -> list[dict]:
    """RFT rows ``say K`` with the reference field ``k``."""
    return [{"messages": [{"role": "user", "content": f"say {i % 7}"}], "k": i % 7} for i in range(n)]


def chat_rows(n: int) -> list[dict]:
    """SFT rows: ``echo K`` answered ``K!``."""
    return [
        {
            "messages": [
                {"role": "user", "content": f"echo {i % 5}"},
                {"role": "assistant", "content": f"{i % 5}!"},
            ]
        }
        for i in range(n)
    ]


def word_rankings(n: int, k: int = 2) -> list[Ranking]:
    """Responses with more 'x' characters are better."""
    out = []
    for i in range(n):
        counts = sorted({(i * 7 + j * 3) % 6 for j in range(k + 2)}, reverse=True)[:k]
        out.append(
            Ranking([{"role": "user", "content": f"p{i % 5}"}], ["x" * c + "o" * (6 - c) for c in counts])
        )
    return out


def digit_fraction(item: dict, sample: dict) -> float:
    """A reward a micro model learns in a few steps: the share of digits in the output."""
    text = sample["output_text"]
    return sum(c.isdigit() for c in text) / max(1, len(text)) if text else 0.0


def wait_for(fn: Callable[[], T], timeout: float = 300, every: float = 0.5) -> T:
    """Poll ``fn`` until it returns something truthy and return that; fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {fn}")
