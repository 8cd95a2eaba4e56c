"""A hand-written Llama-family decoder for sampling: a preallocated KV cache and no per-step
`transformers` machinery, with a static-shape step for ``torch.compile`` and CUDA graphs.

:class:`~reinforge.models.generation.HFBackend` drives it; :mod:`reinforge.models.packed` shares its
per-layer weights and rotary helpers for the padding-free training forward.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def mask_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted over real tokens only, so left padding does not shift them."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


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
    bias, as two batched matmuls: on CPU at decode shapes ``scaled_dot_product_attention``'s fixed cost
    per call dominates, and this is cheaper (measured in benchmarks/README.md, "Measurement notes")."""
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
    elementwise work into a few kernels. Compiling takes seconds per batch shape, so it pays off over a
    training run, not in a short test, hence opt-in (``compile_decode``; figures in benchmarks/README.md,
    "Measurement notes").
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
