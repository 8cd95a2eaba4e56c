"""Generation backends: batched sampling that returns token ids and per-token log-probs.

One protocol, :class:`GenerationBackend`, with one method; :class:`HFBackend` is the reference
implementation (KV-cached decoding over a `transformers` model, each prompt prefilled once and its
cache repeated for the ``n`` samples of its group). Other backends (vLLM, a remote server) implement
the same ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F


@dataclass
class SamplingParams:
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    max_tokens: int = 32
    n: int = 1  # samples per prompt (the GRPO group size)
    seed: int | None = None


@dataclass
class Generations:
    """Outputs for B prompts x n samples, prompt-major: sample j of prompt i is at ``i * n + j``."""

    completion_ids: list[list[int]]  # B*n lists, EOS included when generated
    logprobs: list[list[float]]  # per completion token, under the temperature-scaled distribution
    texts: list[str]  # decoded, special tokens removed
    finish_reasons: list[str]  # "stop" (EOS) or "length"
    n: int = 1
    stats: dict = field(default_factory=dict)


class GenerationBackend(Protocol):
    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> Generations:
        """Sample ``params.n`` completions for each prompt (token ids, no padding)."""
        ...


def left_pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids and attention mask, padded on the left so every row ends at the same column."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, L - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, L - len(s) :] = 1
    return ids.to(device), mask.to(device)


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None):
    """Pick next tokens from (B, V) logits; return (tokens, logprob under the temperature-scaled dist)."""
    if temperature <= 0:
        logp = F.log_softmax(logits.float(), dim=-1)
        tok = logp.argmax(-1)
        return tok, logp.gather(-1, tok[:, None]).squeeze(-1)
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    probs = logp.exp()
    if top_p < 1.0:
        sorted_p, idx = probs.sort(-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p  # the smallest prefix with mass >= top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    tok = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    return tok, logp.gather(-1, tok[:, None]).squeeze(-1)


class HFBackend:
    """KV-cached sampling with a `transformers` causal LM; works on CPU and GPU."""

    def __init__(self, model, tokenizer, eos_token_ids: list[int] | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = eos_token_ids or [tokenizer.eos_token_id]

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> Generations:
        from transformers import DynamicCache

        model, n = self.model, params.n
        device = next(model.parameters()).device
        gen = None
        if params.seed is not None:
            gen = torch.Generator(device=device).manual_seed(params.seed)
        was_training = model.training
        model.eval()
        ids, mask = left_pad(prompt_ids, self.pad_id, device)  # (B, L)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        # 1. prefill each distinct prompt once, then repeat its cache for the n samples of its group
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits = out.logits[:, -1, :]
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, 0)
            mask = mask.repeat_interleave(n, 0)
            pos = pos.repeat_interleave(n, 0)
        BN = logits.shape[0]
        eos = torch.tensor(self.eos_ids, device=device)
        done = torch.zeros(BN, dtype=torch.bool, device=device)
        next_pos = pos[:, -1] + 1
        toks, lps = [], []
        # 2. decode: one token per step for every unfinished row
        for _ in range(params.max_tokens):
            tok, lp = sample_next(logits, params.temperature, params.top_p, gen)
            tok = torch.where(done, torch.full_like(tok, self.pad_id), tok)
            toks.append(tok)
            lps.append(torch.where(done, torch.zeros_like(lp), lp))
            done = done | torch.isin(tok, eos)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)  # finished rows are ignored
            out = model(
                input_ids=tok[:, None],
                attention_mask=mask,
                position_ids=next_pos[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
        model.train(was_training)
        # 3. cut each row at its first EOS
        tok_mat = torch.stack(toks, 1).tolist()
        lp_mat = torch.stack(lps, 1).tolist()
        eos_set = set(self.eos_ids)
        comp, logprobs, reasons = [], [], []
        for row, lrow in zip(tok_mat, lp_mat):
            cut = next((i + 1 for i, t in enumerate(row) if t in eos_set), None)
            comp.append(row[:cut] if cut else row)
            logprobs.append(lrow[:cut] if cut else lrow)
            reasons.append("stop" if cut else "length")
        texts = self.tokenizer.batch_decode(comp, skip_special_tokens=True)
        return Generations(comp, logprobs, texts, reasons, n=n)


def generate_chat(
    model, tokenizer, messages_list: list[list[dict]], params: SamplingParams
) -> list[list[str]]:
    """Convenience for apps: n sampled texts for each conversation."""
    from reinforge.models.chat import encode_prompt

    backend = HFBackend(model, tokenizer)
    out = backend.generate([encode_prompt(tokenizer, m) for m in messages_list], params)
    return [out.texts[i * params.n : (i + 1) * params.n] for i in range(len(messages_list))]
