"""Generation backends: batched sampling that returns token ids and per-token log-probs.

One protocol, :class:`GenerationBackend`, with one method; :class:`HFBackend` is the reference
implementation (KV-cached decoding over a `transformers` model, each prompt prefilled once and its
cache repeated for the ``n`` samples of its group). Other backends (vLLM, a remote server) implement
the same ``generate``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
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


def mask_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted over real tokens only, so left padding does not shift them."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


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


# ---------------------------------------------------------------------------------------------- fast decoder


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


@dataclass
class _DecoderLayerWeights:
    """One Llama-family decoder layer's weights as plain tensors, for :class:`StaticCacheDecoder`."""

    input_norm: object  # x -> RMSNorm(x)
    post_norm: object
    qkv: torch.Tensor  # (n_q + 2 n_kv) * head_dim rows: q, then k, then v
    qkv_bias: torch.Tensor | None
    n_q: int  # query heads
    n_kv: int  # key/value heads
    head_dim: int
    scaling: float
    o: torch.Tensor
    o_bias: torch.Tensor | None
    mlp: object  # h -> MLP(h)

    @staticmethod
    def of(layer, config) -> _DecoderLayerWeights:
        a, m = layer.self_attn, layer.mlp
        projs = (a.q_proj, a.k_proj, a.v_proj)
        D = a.head_dim
        fused_mlp = getattr(config, "hidden_act", "silu") == "silu" and m.gate_proj.bias is None
        if fused_mlp:
            gate_up, down, down_bias = (
                torch.cat([m.gate_proj.weight, m.up_proj.weight]),
                m.down_proj.weight,
                m.down_proj.bias,
            )

            def mlp(h):
                gate, up = F.linear(h, gate_up).chunk(2, dim=-1)
                return F.linear(F.silu(gate) * up, down, down_bias)
        else:
            mlp = m
        return _DecoderLayerWeights(
            input_norm=_rms_norm(layer.input_layernorm),
            post_norm=_rms_norm(layer.post_attention_layernorm),
            qkv=torch.cat([p.weight for p in projs]),
            qkv_bias=torch.cat([p.bias for p in projs]) if a.q_proj.bias is not None else None,
            n_q=a.q_proj.out_features // D,
            n_kv=a.k_proj.out_features // D,
            head_dim=D,
            scaling=a.scaling,
            o=a.o_proj.weight,
            o_bias=a.o_proj.bias,
            mlp=mlp,
        )


def _rms_norm(module):
    """``F.rms_norm`` with the module's weight (one call, no module dispatch) for fp32 Llama-style RMSNorms;
    the module itself otherwise (it upcasts half precision its own way)."""
    w, eps = getattr(module, "weight", None), getattr(module, "variance_epsilon", None)
    if w is None or eps is None or w.dtype != torch.float32:
        return module
    return lambda x: F.rms_norm(x, (w.shape[0],), w, eps)


class StaticCacheDecoder:
    """Llama-family decoding with a pre-allocated KV cache and no per-step `transformers` machinery.

    Works on models laid out as Llama/Qwen2/Mistral (``model.model.layers[i].self_attn.{q,k,v,o}_proj``,
    RMSNorms, a rotary embedding module, no sliding window). The cache is one (N, KVH, L+T, D) tensor pair
    per layer written in place; the attention mask is a preallocated (N, L+T) bool. Per decode step
    this runs the same matmuls as the HF forward but skips mask building, cache bookkeeping and
    output dataclasses, which dominate on small models.
    """

    def __init__(self, model):
        self.model = model
        self.body = model.model
        self.head = model.get_output_embeddings()
        # per layer, the weights as plain tensors (no module calls per step), with q|k|v and gate|up fused
        # into one matmul each: decoding a small model is bound by per-op overhead, not FLOPs
        self.layers = [_DecoderLayerWeights.of(layer, model.config) for layer in self.body.layers]
        self.final_norm = _rms_norm(self.body.norm)
        # heads per layer when every layer has as many key/value heads as query heads (the matmul attention)
        first = self.layers[0]
        uniform = all((w.n_q, w.n_kv) == (first.n_q, first.n_q) for w in self.layers)
        self.matmul_heads = first.n_q if uniform else 0
        self.rope_table: tuple[torch.Tensor, torch.Tensor] | None = None  # set by prefill

    @staticmethod
    def supports(model) -> bool:
        cfg = getattr(model, "config", None)
        body = getattr(model, "model", None)
        layers = getattr(body, "layers", None)
        kind = getattr(cfg, "model_type", "")
        sliding = (
            getattr(cfg, "use_sliding_window", False)
            if kind == "qwen2"
            else getattr(cfg, "sliding_window", None)
        )
        return (
            kind in ("llama", "qwen2", "mistral")
            and not sliding
            and layers is not None
            and hasattr(body, "rotary_emb")
            and type(model).__name__.endswith("ForCausalLM")
        )

    def _layer(self, i: int, x, cos, sin, keys, values, start: int, mask) -> torch.Tensor:
        """One decoder layer over x (N, S, H) whose tokens go to cache slots [start, start+S)."""
        w = self.layers[i]
        N, S, _ = x.shape
        D = w.head_dim
        qkv = F.linear(w.input_norm(x), w.qkv, w.qkv_bias).view(N, S, -1, D)
        qk = qkv[:, :, : w.n_q + w.n_kv]  # rotary on q and k in one pass
        qk = (qk * cos[:, :, None] + rotate_half(qk) * sin[:, :, None]).transpose(1, 2)
        q, k = qk[:, : w.n_q], qk[:, w.n_q :]
        v = qkv[:, :, w.n_q + w.n_kv :].transpose(1, 2)
        if isinstance(start, torch.Tensor):  # static shapes: write one slot, attend over the whole cache
            keys[i].index_copy_(2, start.view(1), k)
            values[i].index_copy_(2, start.view(1), v)
            k_all, v_all = keys[i], values[i]
        else:
            keys[i][:, :, start : start + S] = k
            values[i][:, :, start : start + S] = v
            k_all, v_all = keys[i][:, :, : start + S], values[i][:, :, : start + S]
        if mask.dim() == 3:  # a (N * heads, 1, slots) additive bias: one query per row (see step)
            o = single_query_attention(q, k_all, v_all, mask, w.scaling)
        else:
            o = F.scaled_dot_product_attention(
                q, k_all, v_all, attn_mask=mask, scale=w.scaling, enable_gqa=w.n_q != w.n_kv
            )
        x = x + F.linear(o.transpose(1, 2).reshape(N, S, -1), w.o, w.o_bias)
        return x + w.mlp(w.post_norm(x))

    def _forward(self, ids, pos, keys, values, start, mask) -> torch.Tensor:
        x = self.body.embed_tokens(ids)
        if self.rope_table is not None:  # two lookups instead of the rotary module's ~10 ops per step
            cos, sin = F.embedding(pos, self.rope_table[0]), F.embedding(pos, self.rope_table[1])
        else:
            cos, sin = self.body.rotary_emb(x, pos)
        for i in range(len(self.layers)):
            x = self._layer(i, x, cos, sin, keys, values, start, mask)
        return self.head(self.final_norm(x[:, -1]))  # (N, V) logits of the last position

    def _build_rope_table(self, positions: int, device) -> None:
        """cos/sin for positions [0, positions), from the model's own rotary module, when they do not
        depend on the sequence length (rope types "dynamic" and "longrope" do: those call it per step)."""
        rope = self.body.rotary_emb
        if getattr(rope, "rope_type", "default") in ("dynamic", "longrope"):
            return
        probe = torch.zeros(1, dtype=self.head.weight.dtype, device=device)
        cos, sin = rope(probe, torch.arange(positions, device=device)[None])
        self.rope_table = (cos[0], sin[0])

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, n: int, max_tokens: int):
        """Run the B left-padded prompts once; return (N=B*n logits, state) with the cache repeated n times."""
        B, L = ids.shape
        cfg = self.model.config
        pos = mask_positions(mask)
        n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        D = self.body.layers[0].self_attn.head_dim
        dtype, device = self.head.weight.dtype, ids.device
        n_layers = len(self.body.layers)
        keys = [torch.empty(B, n_kv, L, D, dtype=dtype, device=device) for _ in range(n_layers)]
        values = [torch.empty_like(k) for k in keys]
        valid = mask.bool()
        causal = torch.ones(L, L, dtype=torch.bool, device=device).tril()
        # a query may always see itself, so padded rows stay finite (real queries never see them)
        attn_mask = (causal & valid[:, None, :]) | torch.eye(L, dtype=torch.bool, device=device)
        N, total = B * n, L + max_tokens
        self._build_rope_table(total, device)  # positions never exceed the slots
        logits = self._forward(ids, pos, keys, values, 0, attn_mask[:, None])
        # zeros, not empty: a static-shape step attends over unwritten slots too (masked), and a masked
        # NaN from uninitialised memory would still poison the weighted sum (0 * NaN)
        big_k = [torch.zeros(N, n_kv, total, D, dtype=dtype, device=device) for _ in range(n_layers)]
        big_v = [torch.zeros_like(k) for k in big_k]
        for i in range(n_layers):
            big_k[i][:, :, :L] = keys[i].repeat_interleave(n, 0)
            big_v[i][:, :, :L] = values[i].repeat_interleave(n, 0)
        full_mask = torch.ones(N, total, dtype=torch.bool, device=device)
        full_mask[:, :L] = valid.repeat_interleave(n, 0)
        return logits.repeat_interleave(n, 0), (
            big_k,
            big_v,
            full_mask,
            pos[:, -1].repeat_interleave(n, 0),
            L,
        )

    @staticmethod
    def select_rows(state, keep: torch.Tensor):
        """The decode state for rows ``keep`` only (finished rows leave the batch)."""
        keys, values, full_mask, last_pos, L = state
        pick = lambda x: x.index_select(0, keep)  # noqa: E731  (several times faster than x[keep] on CPU)
        return [pick(k) for k in keys], [pick(v) for v in values], pick(full_mask), pick(last_pos), L

    def step(self, tok: torch.Tensor, state, slot: int) -> torch.Tensor:
        """Feed (N,) tokens into cache slot ``slot`` and return the next (N, V) logits."""
        keys, values, full_mask, last_pos, L = state
        pos = (last_pos + 1 + (slot - L))[:, None]
        seen = full_mask[:, None, : slot + 1]  # (N, 1, slots)
        if self.matmul_heads and tok.device.type == "cpu" and keys[0].dtype == torch.float32:
            # fp32 on CPU: attention as two batched matmuls, with the bias built once for all layers
            bias = torch.zeros(seen.shape, device=tok.device).masked_fill_(~seen, float("-inf"))
            return self._forward(
                tok[:, None], pos, keys, values, slot, bias.repeat_interleave(self.matmul_heads, 0)
            )
        return self._forward(tok[:, None], pos, keys, values, slot, seen[:, None])

    def step_static(self, tok: torch.Tensor, state, slot: torch.Tensor) -> torch.Tensor:
        """:meth:`step` with shapes that do not depend on the step: ``slot`` is a 0-d tensor, the cache
        is written with ``index_copy_`` and attention runs over every slot with the unwritten ones
        masked. The same logits; what a CUDA graph can capture once and replay for every token."""
        keys, values, full_mask, last_pos, L = state
        total = full_mask.shape[1]
        pos = (last_pos + 1 + (slot - L))[:, None]
        written = torch.arange(total, device=slot.device) <= slot
        return self._forward(tok[:, None], pos, keys, values, slot, (full_mask & written)[:, None, None, :])


def single_query_attention(q, k, v, bias, scale: float) -> torch.Tensor:
    """Attention for one query per row, q (N, H, 1, D) over k, v (N, H, S, D) with an additive (N * H, 1, S)
    bias, as two batched matmuls: on CPU, ~25% less time per call than ``scaled_dot_product_attention``
    at decode shapes (64 rows, 4 heads, 22 slots), where its fixed cost dominates."""
    N, H, _, D = q.shape
    scores = torch.baddbmm(
        bias,
        q.reshape(N * H, 1, D),
        k.reshape(N * H, -1, D).transpose(1, 2),
        alpha=scale,
    )
    return torch.bmm(scores.softmax(-1), v.reshape(N * H, -1, D)).view(N, H, 1, D)


class CompiledStep:
    """``StaticCacheDecoder.step_static`` through ``torch.compile`` (static shapes). If compiling fails here
    (no C++ compiler, an unsupported platform), it warns once and runs the same step eagerly from then on.

    On CPU a decode step of a small model is bound by per-op overhead; the compiled step fuses its
    elementwise work into a few kernels. Measured on the 0.86M benchmark model: 64 x 16 tokens in 37.5 ms
    against 54.3 ms eager (with finished rows dropped), after 7-11 s of compiling per batch shape (1-3 s
    from inductor's on-disk cache). It pays off
    over a training run, not in a short test, hence opt-in (``compile_decode``).
    """

    def __init__(self):
        self.fn = torch.compile(StaticCacheDecoder.step_static, dynamic=False)
        self.failed: str | None = None

    def __call__(self, dec, tok, state, slot):
        if self.failed is None:
            try:
                return self.fn(dec, tok, state, slot)
            except Exception as e:  # noqa: BLE001 - whatever stops compilation, decoding goes on eagerly
                self.failed = f"{type(e).__name__}: {e}".splitlines()[0]
                warnings.warn(
                    f"compile_decode: torch.compile failed ({self.failed}); decoding eagerly", stacklevel=2
                )
        return StaticCacheDecoder.step_static(dec, tok, state, slot)


@functools.cache
def compiled_step() -> CompiledStep:
    """One compiled step per process: its compiled code is reused by every generation of the same shape."""
    return CompiledStep()


class GraphedDecodeStep:
    """A CUDA graph of :meth:`StaticCacheDecoder.step_static` for one batch and cache, replayed per token.

    Decoding a small model one token at a time is bound by kernel launches, not by the GPU: replaying
    a captured graph issues the whole step (every layer) as one launch from the host.
    """

    def __init__(self, dec: StaticCacheDecoder, state, first_slot: int):
        full_mask = state[2]
        self.tok = torch.zeros(full_mask.shape[0], dtype=torch.long, device=full_mask.device)
        self.slot = torch.tensor(first_slot, device=full_mask.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up before capture; it writes only slot first_slot,
            for _ in range(2):  # which the first real step overwrites before anything reads it
                dec.step_static(self.tok, state, self.slot)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = dec.step_static(self.tok, state, self.slot)

    def __call__(self, tok: torch.Tensor, slot: int) -> torch.Tensor:
        self.tok.copy_(tok)
        self.slot.fill_(slot)
        self.graph.replay()
        return self.logits  # overwritten by the next replay: use it before calling again


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
        compaction copies the whole cache, hence not at every finished row: for 64 x 16 tokens of the 11.5M
        benchmark model, 164 ms at a quarter, 173 ms at an eighth, 202 ms never compacting. Sampling still
        draws for all N rows (finished ones from their last logits, then discarded), so the random stream,
        and every token, is the same either way. "All done?" is checked every step on CPU and every 8 steps
        elsewhere (each check syncs the device).
        """
        L = ids.shape[1]
        logits, state = dec.prefill(ids, mask, params.n, params.max_tokens)
        step = None
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
        from transformers import DynamicCache

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
    from reinforge.models.chat import encode_prompt

    backend = HFBackend(model, tokenizer)
    out = backend.generate([encode_prompt(tokenizer, m) for m in messages_list], params)
    return [out.texts[i * params.n : (i + 1) * params.n] for i in range(len(messages_list))]
