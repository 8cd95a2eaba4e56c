"""Tiny but real causal LMs: `transformers` Llama architecture + a real `tokenizers` tokenizer.

The tokenizer is character level (every printable ASCII character is a token) with role tokens for
chat, so tiny models learn small text tasks quickly. Models are saved with ``save_pretrained`` and load
with plain ``transformers`` (no reinforge import). ``tiny_model(task, size, seed)`` builds and
SFT-warms one on a built-in task, cached on disk by (task, size, seed, examples, steps).

Configs name them by id: ``tiny:TASK:SIZE[:sft_steps=N][:seed=N][:train_examples=N]`` (``parse_tiny_id``).
A built-in TASK's model is SFT-warmed for 300 steps on 256 of its examples unless the id says otherwise;
``tiny:blank:SIZE`` is untrained, the base to SFT on a task of your own.

>>> tok = build_tokenizer()
>>> tok.decode(tok("12+7")["input_ids"])
'12+7'
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders
from tokenizers.models import BPE
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # weight loading/saving bars drown the training progress bar

SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<unk>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# name -> (hidden, layers, heads, intermediate). Parameter counts with the 101-token vocabulary.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "1m": (128, 4, 4, 384),  # ~0.86M: the speed issue's CPU "tiny" configuration
    "4m": (256, 4, 4, 768),  # ~3.4M: 4x the 1m model
    "11m": (384, 6, 6, 1152),  # ~11M: the speed issue's CPU "small" configuration
    "30m": (512, 8, 8, 1792),  # ~30M
}


def cache_root() -> Path:
    return Path(os.environ.get("REINFORGE_CACHE", Path.home() / ".cache" / "reinforge"))


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer (BPE with no merges) with chat role tokens and a chat template."""
    chars = [c for c in string.printable if c not in "\x0b\x0c\r"]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + chars)}
    core = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.add_special_tokens(SPECIAL_TOKENS)
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<|pad|>",
        eos_token="<|end|>",
        unk_token="<unk>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def build_model(size: str = "1m", seed: int = 0, vocab_size: int | None = None) -> LlamaForCausalLM:
    """A randomly initialised Llama of one of ``SIZES`` (deterministic for a seed)."""
    if size not in SIZES:
        raise ValueError(f"unknown tiny size {size!r}; choose one of {sorted(SIZES)}")
    hidden, layers, heads, inter = SIZES[size]
    tok_vocab = vocab_size or len(build_tokenizer())
    config = LlamaConfig(
        vocab_size=tok_vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        rope_theta=10000.0,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_tiny(model, tokenizer, path: Path) -> Path:
    """Save atomically (temp dir, then rename) so a crash never leaves a half-written model."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)
    return path


def tiny_model(
    task: str = "addition",
    size: str = "1m",
    seed: int = 0,
    train_examples: int = 256,
    sft_steps: int = 300,
    cache_dir: Path | None = None,
) -> Path:
    """Build (or fetch from the cache) a tiny model SFT-warmed on a built-in task; returns its directory.

    ``sft_steps=0`` gives the untrained model. The cache key covers every argument, so two calls with the
    same arguments return the same weights.
    """
    key = json.dumps([task, size, seed, train_examples, sft_steps, 3])
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    root = Path(cache_dir) if cache_dir else cache_root() / "tiny"
    path = root / f"{task}-{size}-s{seed}-n{train_examples}-k{sft_steps}-{digest}"
    if (path / "config.json").exists():
        return path
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    model = build_model(size, seed, len(tokenizer))
    if sft_steps > 0:
        from reinforge.tasks import get_task, sft_rows
        from reinforge.train.sft import sft_warmup

        rows = get_task(task).make_rows(train_examples, seed=seed + 1000, split="train")
        sft_warmup(model, tokenizer, sft_rows(rows), steps=sft_steps, seed=seed)
    return save_tiny(model, tokenizer, path)


# ``tiny:TASK:SIZE[:key=N]...``: the keys a tiny id may set (``tiny_model``'s integer arguments)
TINY_OPTIONS = ("sft_steps", "seed", "train_examples")
BLANK = "blank"  # tiny:blank:SIZE: untrained weights and the tiny tokenizer, the base for a task of your own


def tiny_id_usage() -> str:
    """One line naming every valid part of a tiny id (for error messages)."""
    from reinforge.tasks import task_names

    return (
        f"tiny ids are tiny:TASK:SIZE[:{'=N][:'.join(TINY_OPTIONS)}=N] with TASK one of "
        f"{', '.join([BLANK, *task_names()])} ({BLANK} = untrained) and SIZE one of {', '.join(SIZES)}"
    )


def parse_tiny_id(name: str) -> dict | None:
    """``tiny:addition:1m`` or ``tiny:addition:1m:sft_steps=600`` -> kwargs for ``tiny_model``; else None.

    A malformed tiny id raises ``ConfigError`` naming the bad part and every valid one.

    >>> parse_tiny_id("tiny:addition:4m:seed=3")
    {'task': 'addition', 'size': '4m', 'seed': 3}
    >>> parse_tiny_id("tiny:blank:1m")
    {'task': 'blank', 'size': '1m', 'sft_steps': 0}
    >>> parse_tiny_id("runs/sft/final") is None
    True
    """
    from reinforge.errors import ConfigError
    from reinforge.tasks import task_names

    if not name.startswith("tiny:"):
        return None
    parts = name.split(":")[1:]

    def bad(what: str) -> ConfigError:
        return ConfigError(f"model {name!r}: {what}; {tiny_id_usage()}")

    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise bad("give a task and a size")
    task, size = parts[0], parts[1]
    if task != BLANK and task not in task_names():
        raise bad(f"unknown task {task!r}")
    if size not in SIZES:
        raise bad(f"unknown size {size!r}")
    kwargs: dict = {"task": task, "size": size}
    for extra in parts[2:]:
        key, eq, value = extra.partition("=")
        if key not in TINY_OPTIONS or not eq:
            raise bad(f"unknown option {extra!r}")
        if not value.isdigit():
            raise bad(f"option {key}={value!r} must be a whole number >= 0")
        kwargs[key] = int(value)
    if task == BLANK:
        if kwargs.get("sft_steps"):
            raise bad(
                f"{BLANK} has no data to warm up on; drop sft_steps (SFT it on your data with `reinforge sft`)"
            )
        kwargs["sft_steps"] = 0
    return kwargs
