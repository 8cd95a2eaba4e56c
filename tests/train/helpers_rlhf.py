"""Shared fixtures for the RLHF tests: a micro Llama (one layer, hidden 32) and small data files."""

from __future__ import annotations

import json
from pathlib import Path


def micro_model(path: Path, seed: int = 0) -> Path:
    """A randomly initialised micro Llama with the tiny char tokenizer, saved at ``path`` (~0.01 s per forward)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

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
    return [{"messages": [{"role": "user", "content": f"say {i % 7}"}], "k": i % 7} for i in range(n)]
