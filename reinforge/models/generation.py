"""Generation backends: batched sampling that returns token ids and per-token log-probs.

One protocol, :class:`GenerationBackend`, with one method; :class:`HFBackend` is the reference
implementation (KV-cached decoding over a `transformers` model, each prompt prefilled once and its
cache repeated for the ``n`` samples of its group; Llama-family models decode through
:mod:`reinforge.models.decoder`). Other backends (vLLM, a remote server) implement the same ``generate``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from reinforge.models.chat import encode_prompt
from reinforge.models.decoder import GraphedDecodeStep, StaticCacheDecoder, compiled_step, mask_positions


@dataclass(kw_only=True)
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


@functools.cache
def _cache_keyword(forward) -> str:
    params = inspect.signature(forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(model, cache) -> dict:
    """``{name: cache}`` under the keyword this transformers version's forward takes: ``cache`` from 5.x
    releases that renamed it (``past_key_values`` warns there, and goes in 5.40), else ``past_key_values``.
    Looked up once per forward function (decoding calls this every token)."""
    return {_cache_keyword(type(model).forward): cache}


def output_cache(out):
    """The KV cache a forward returned, under either name."""
    return out["cache"] if "cache" in out else out.past_key_values


def left_pad(
    seqs: list[list[int]], pad_id: int, device, multiple_of: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids and attention mask, padded on the left so every row ends at the same column; L is the
    longest row rounded up to ``multiple_of`` (extra padding is masked: it changes no value)."""
    L = -(-max(len(s) for s in seqs) // multiple_of) * multiple_of
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, L - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, L - len(s) :] = 1
    return ids.to(device), mask.to(device)


def scaled_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits in fp32, divided by the sampling temperature (0, greedy, and 1 leave them as they are).

    The one temperature rule: sampling here, and the trainers' log-probs of sampled tokens, must agree."""
    logits = logits.float()
    return logits / temperature if temperature != 1.0 and temperature > 0 else logits


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None):
    """Pick next tokens from (B, V) logits; return (tokens, logprob under the temperature-scaled dist)."""
    logp = F.log_softmax(scaled_logits(logits, temperature), dim=-1)
    if temperature <= 0:
        tok = logp.argmax(-1)
        return tok, logp.gather(-1, tok[:, None]).squeeze(-1)
    probs = logp.exp()
    if top_p < 1.0:
        sorted_p, idx = probs.sort(-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p  # the smallest prefix with mass >= top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    # torch.multinomial's own algorithm for one sample (argmax of p / q, q ~ Exp(1)): the same draws and
    # tokens, without its per-call validation passes over the probabilities
    race = torch.empty_like(probs).exponential_(1, generator=gen)
    tok = (probs / race).argmax(-1)
    return tok, logp.gather(-1, tok[:, None]).squeeze(-1)


class HFBackend:
    """KV-cached sampling with a `transformers` causal LM; works on CPU and GPU."""

    def __init__(
        self,
        model,
        tokenizer,
        eos_token_ids: list[int] | None = None,
        fast: bool = True,
        cuda_graphs: bool = True,
        compile_decode: bool = False,
    ):
        self.model = model
        self.fast = fast  # StaticCacheDecoder for Llama-family models; False: the model's own forward
        self.cuda_graphs = cuda_graphs  # on CUDA, replay each decode step as one captured graph
        # elsewhere (CPU), optionally run the static-shape step through torch.compile: group sampling
        # (n > 1) only, prompts padded to a multiple of 8 so one compiled shape serves a whole run
        self.compile_decode = compile_decode
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = eos_token_ids or [tokenizer.eos_token_id]

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> Generations:
        model, n = self.model, params.n
        device = next(model.parameters()).device
        gen = None
        if params.seed is not None:
            gen = torch.Generator(device=device).manual_seed(params.seed)
        fast = self.fast and StaticCacheDecoder.supports(model)  # no dropout in it: train/eval mode is moot
        graphs = fast and self.cuda_graphs and device.type == "cuda"
        compiled = fast and self.compile_decode and not graphs and params.n > 1
        # compiled: prompts padded to a multiple of 8, so one compiled shape serves every batch
        ids, mask = left_pad(prompt_ids, self.pad_id, device, multiple_of=8 if compiled else 1)  # (B, L)
        eos = torch.tensor(self.eos_ids, device=device)
        if fast:
            dec = StaticCacheDecoder(model)
            toks, lps, row_steps = self._decode_static(
                dec, ids, mask, params, gen, eos, graphs, compiled=compiled
            )
        else:
            was_training = model.training
            model.eval()
            toks, lps = self._decode_hf(model, ids, mask, params, gen, eos)
            model.train(was_training)
            row_steps = toks.shape[0] * max(0, toks.shape[1] - 1)
        # 3. cut each row at its first EOS
        tok_mat = toks.tolist()
        lp_mat = lps.tolist()
        eos_set = set(self.eos_ids)
        comp, logprobs, reasons = [], [], []
        for row, lrow in zip(tok_mat, lp_mat):
            cut = next((i + 1 for i, t in enumerate(row) if t in eos_set), None)
            comp.append(row[:cut] if cut else row)
            logprobs.append(lrow[:cut] if cut else lrow)
            reasons.append("stop" if cut else "length")
        texts = self.tokenizer.batch_decode(comp, skip_special_tokens=True)
        # decode_row_steps: rows run through the model after prefill (finished rows dropped on CPU)
        return Generations(comp, logprobs, texts, reasons, n=n, stats={"decode_row_steps": row_steps})

    def _decode_static(
        self,
        dec: StaticCacheDecoder,
        ids,
        mask,
        params: SamplingParams,
        gen,
        eos,
        graphs: bool = False,
        static_shapes: bool = False,
        compiled: bool = False,
    ):
        """(N, T) tokens and log-probs with a preallocated cache, and the number of row-steps decoded.

        ``graphs`` replays a CUDA graph per step; ``static_shapes`` runs the graph's step eagerly;
        ``compiled`` runs it through :func:`compiled_step`. These keep every row in the batch to the end.

        Otherwise (eager) finished rows leave the decode batch once a quarter of it has finished: a random
        or early model stops well before ``max_tokens``, and decoding finished rows is wasted work. Each
        compaction copies the whole cache, hence not at every finished row (the threshold's measurements
        are in benchmarks/README.md, "Measurement notes"). Sampling still
        draws for all N rows (finished ones from their last logits, then discarded), so the random stream,
        and every token, is the same either way. "All done?" is checked every step on CPU and every 8 steps
        elsewhere (each check syncs the device).
        """
        L = ids.shape[1]
        logits, state = dec.prefill(ids, mask, params.n, params.max_tokens)
        step: Callable[[torch.Tensor, int], torch.Tensor] | None = None  # the static-shape decode step
        if graphs and params.max_tokens > 1:
            step = GraphedDecodeStep(dec, state, L)
        elif static_shapes or compiled:
            fn = compiled_step() if compiled else StaticCacheDecoder.step_static
            step = lambda tok, slot: fn(dec, tok, state, torch.tensor(slot, device=ids.device))  # noqa: E731
        N, T = logits.shape[0], params.max_tokens
        toks = torch.full((N, T), self.pad_id, dtype=torch.long, device=ids.device)
        lps = torch.zeros((N, T), dtype=torch.float32, device=ids.device)
        done = torch.zeros(N, dtype=torch.bool, device=ids.device)
        active = torch.arange(N, device=ids.device)  # rows still in the decode batch (eager only)
        check_every = 1 if ids.device.type == "cpu" else 8
        used, row_steps = T, 0
        for t in range(T):
            tok, lp = sample_next(logits, params.temperature, params.top_p, gen)
            toks[:, t], lps[:, t] = tok, lp  # what finished rows draw is blanked once, after the loop
            done = done | torch.isin(tok, eos)
            if t == T - 1:
                break
            if t % check_every == check_every - 1:
                n_done = int(done.sum())
                if n_done == N:
                    used = t + 1
                    break
                if step is None and n_done - (N - len(active)) >= max(1, len(active) // 4):
                    keep = (~done.index_select(0, active)).nonzero().squeeze(1)
                    active, state = active.index_select(0, keep), dec.select_rows(state, keep)
            if step is not None:
                logits = step(tok, L + t)
                row_steps += N
            elif len(active) == N:
                logits = dec.step(tok, state, L + t)
                row_steps += N
            else:  # finished rows keep their last logits: sampled, then discarded
                logits = logits.index_copy(0, active, dec.step(tok.index_select(0, active), state, L + t))
                row_steps += len(active)
        toks, lps = toks[:, :used], lps[:, :used]
        is_eos = torch.isin(toks, eos).long()
        after_eos = (is_eos.cumsum(1) - is_eos) > 0  # positions past a row's first EOS
        return toks.masked_fill(after_eos, self.pad_id), lps.masked_fill(after_eos, 0.0), row_steps

    def _decode_hf(self, model, ids, mask, params: SamplingParams, gen, eos):
        """Reference decoding through the model's own forward and a `DynamicCache`."""
        n = params.n
        pos = mask_positions(mask)
        cache = DynamicCache()
        # 1. prefill each distinct prompt once, then repeat its cache for the n samples of its group
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            **cache_kwargs(model, cache),
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
        done = torch.zeros(BN, dtype=torch.bool, device=ids.device)
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
                **cache_kwargs(model, cache),
                use_cache=True,
            )
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
        return torch.stack(toks, 1), torch.stack(lps, 1)


def generate_chat(
    model, tokenizer, messages_list: list[list[dict]], params: SamplingParams
) -> list[list[str]]:
    """Convenience for apps: n sampled texts for each conversation."""
    backend = HFBackend(model, tokenizer)
    out = backend.generate([encode_prompt(tokenizer, m) for m in messages_list], params)
    return [out.texts[i * params.n : (i + 1) * params.n] for i in range(len(messages_list))]
