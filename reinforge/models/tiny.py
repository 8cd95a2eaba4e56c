"""Tiny but real causal LMs: `transformers` Llama architecture + a real `tokenizers` tokenizer.

The tokenizer is character level (every printable ASCII character is a token) with role tokens for
chat, so tiny models learn small text tasks quickly. Models are saved with ``save_pretrained`` and load
with plain ``transformers`` (no reinforge import). The ``tiny:TASK:SIZE`` ids that configs use, and the
SFT warm-up on a built-in task behind them, are :mod:`reinforge.train.warmup`'s.

>>> tok = build_tokenizer()
>>> tok.decode(tok("12+7")["input_ids"])
'12+7'
"""

from __future__ import annotations

import os
import re
import shutil
import string
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # weight loading/saving bars drown the training progress bar

SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<unk>"]
# Qwen2.5's layout (Hermes tool calls), spelled with the role tokens: `tools` go in the system turn, one
# JSON function per line inside <tools>; an assistant's calls follow its content as
# "\n<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>" (agents.formats.HermesFormat's text);
# consecutive `tool` messages share one user turn, each in <tool_response>. Without tools a conversation
# renders as it always did: <|role|>content<|end|> per message.
CHAT_TEMPLATE = (
    "{% if tools %}<|system|>"
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{{ '\\n' }}{% endif %}"
    "<tools>{% for t in tools %}{{ '\\n' }}{{ (t['function'] if t['function'] is defined else t) | tojson }}"
    "{% endfor %}{{ '\\n' }}</tools><|end|>{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' and tools and loop.first %}"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] or '' }}"
    "{% for c in m['tool_calls'] or [] %}{% set f = c['function'] if c['function'] is defined else c %}"
    "{{ '\\n<tool_call>\\n{\"name\": ' }}{{ f['name'] | tojson }}{{ ', \"arguments\": ' }}"
    "{{ f['arguments'] | tojson }}{{ '}\\n</tool_call>' }}{% endfor %}<|end|>"
    "{% elif m['role'] == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}<|user|>{% endif %}"
    "<tool_response>{{ m['content'] }}</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}<|end|>{% endif %}"
    "{% else %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# Qwen3's tokenizer holds the Hermes tags as single tokens; spelled out, each costs ~15 character tokens at every
# call and tool answer, and a tiny model learns to copy across them far more slowly (a 1m model copied a tool's
# answer in 62/64 cases after 400 warm-up steps with them, 20/64 without; benchmarks/README.md, "The agent demo")
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
CHARS = [c for c in string.printable if c not in "\x0b\x0c\r"]
# GPT-2's pre-tokenization: a word with its leading space, a run of punctuation, whitespace
WORDS = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_SPECIAL = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS + TOOL_TOKENS))
CACHE_VERSION = (
    4  # part of the cached tiny models' key: bump when the tokenizer, template or architecture changes
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


def build_tokenizer(tool_tokens: bool = False) -> PreTrainedTokenizerFast:
    """Character-level tokenizer (BPE with no merges) with chat role tokens and a chat template;
    ``tool_tokens``: the Hermes tags (``TOOL_TOKENS``) as single tokens, as in Qwen3, for tool-calling models.

    >>> len(build_tokenizer(tool_tokens=True)) - len(build_tokenizer())
    4
    >>> build_tokenizer(tool_tokens=True).tokenize("<tool_response>42")
    ['<tool_response>', '4', '2']
    """
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARS)}
    core = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.add_special_tokens(SPECIAL_TOKENS)
    tok = _chat_tokenizer(core)
    if tool_tokens:  # ordinary added tokens, not special: decoded text keeps them, as Qwen3's does
        tok.add_tokens(TOOL_TOKENS)
    return tok


def build_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A BPE tokenizer trained on ``texts`` as Qwen's and Llama 3's are: words and punctuation runs merge
    (``{"``, ``name``, ``":``), digits stay one per token, the role tokens and the Hermes tags are single
    tokens. Trained on rendered tool calls, the JSON of a call costs ~15 tokens instead of ~60 characters.

    >>> tok = build_bpe_tokenizer(['{"name": "lookup", "arguments": {"key": "123"}}'] * 5, vocab_size=120)
    >>> tok.tokenize('<tool_call>{"name": "lookup"}')[:4]
    ['<tool_call>', '{"', 'name', '":']
    >>> tok.tokenize("2024")
    ['2', '0', '2', '4']
    """
    core = Tokenizer(BPE(unk_token="<unk>"))
    core.add_special_tokens(SPECIAL_TOKENS)
    core.add_tokens(TOOL_TOKENS)
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Split(Regex(WORDS), "isolated")]
    )
    # the trainer sees the text between role tokens and tags only: no merge may swallow one
    pieces = (p for t in texts for p in _SPECIAL.split(t) if p)
    core.train_from_iterator(
        pieces,
        BpeTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=CHARS, show_progress=False
        ),
    )
    return _chat_tokenizer(core)


def _chat_tokenizer(core: Tokenizer) -> PreTrainedTokenizerFast:
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
        max_position_embeddings=1024,  # prompts with tool schemas and several turns
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},  # transformers 5's rope_theta
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_tiny(model, tokenizer, path: Path) -> Path:
    """Save atomically (temp dir, then rename) so a crash never leaves a half-written model."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path
