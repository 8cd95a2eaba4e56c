"""A padding-free forward for Llama-family models over grouped completions (the GRPO update's batch).

A GRPO batch is N = B x G rows of [left-padded prompt | right-padded completion]: each prompt is shared
by G rows and completions have ragged lengths. A padded forward runs every prompt G times and every
completion to the longest one's length. Here each distinct prompt's real tokens run once, and each
completion's real tokens once, as one packed (tokens, hidden) matrix through the projections and the
MLP, which hold nearly all the FLOPs. Tokens are laid out per row only for attention, where a row's
queries see its prompt's keys and its own earlier completion tokens, as in the padded forward.

The last completion token predicts nothing, so it is not fed: row r feeds ``len_r - 1`` tokens, and its
first completion token is predicted by the prompt's last state. Same weights, positions and attention
as the model's own forward: the same states up to float rounding (``tests/train/test_fast_path.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from reinforge.models.decoder import StaticCacheDecoder, mask_positions, rotate_half


@dataclass
class PackedBatch:
    """Index bookkeeping for one batch, built once and shared by the policy and reference forwards.

    M tokens are packed: the U distinct prompts' real tokens (Mp of them, row-major), then the fed
    completion tokens (Mc, row-major). Attention sees them laid out as N rows of S = P + Tf slots, the
    row's prompt then its fed tokens, as in the padded forward.
    """

    ids: torch.Tensor  # (M,) packed token ids
    pos: torch.Tensor  # (M,) their positions
    spread: torch.Tensor  # (N * S,) the packed token in each attention slot (pad slots: token 0, masked)
    collect: torch.Tensor  # (M,) the slot each packed token's attention output is read from
    mask: torch.Tensor  # (N, 1, S, S) causal over real slots; a pad query sees itself (finite, unused)
    predictors: torch.Tensor  # (K,) for each completion token, the packed state that predicts it
    targets: torch.Tensor  # (K,) the completion tokens, row-major
    completion: torch.Tensor  # (N, T) bool: where those K tokens sit in the padded batch

    @staticmethod
    def build(
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        completion_mask: torch.Tensor,
        prompt_of: torch.Tensor,
    ) -> PackedBatch:
        """``completion_mask`` (N, T) must be a prefix per row (as ``collect_rollout`` packs it); rows with
        equal ``prompt_of`` share a prompt."""
        device = input_ids.device
        N, T = completion_mask.shape
        P = input_ids.shape[1] - T
        arange = lambda n: torch.arange(n, device=device)  # noqa: E731
        _, row_prompt = torch.unique(prompt_of, return_inverse=True)
        U = int(row_prompt.max()) + 1
        first = torch.full((U,), N, device=device).scatter_reduce(0, row_prompt, arange(N), reduce="amin")
        p_valid = attention_mask[first, :P].bool()  # (U, P), left-padded
        lengths = completion_mask.sum(-1)
        fed = (lengths - 1).clamp(min=0)  # the last token predicts nothing: not fed
        Tf = int(fed.max()) if N else 0
        f_valid = arange(Tf)[None, :] < fed[:, None]  # (N, Tf)
        S = P + Tf
        Mp = int(p_valid.sum())

        # packed index of every (prompt, column) and (row, fed column); pads point at token 0 (masked)
        p_index = torch.zeros(U, P, dtype=torch.long, device=device)
        p_index[p_valid] = arange(Mp)
        f_index = torch.zeros(N, Tf, dtype=torch.long, device=device)
        f_index[f_valid] = Mp + arange(int(f_valid.sum()))
        spread = torch.cat([p_index[row_prompt], f_index], dim=1).flatten()
        # a prompt token's output is read from one row holding it (the others compute it and drop it)
        collect = torch.cat(
            [
                (first[:, None] * S + arange(P)[None, :])[p_valid],
                (arange(N)[:, None] * S + P + arange(Tf))[f_valid],
            ]
        )
        key_valid = torch.cat([p_valid[row_prompt], f_valid], dim=1)  # (N, S)
        causal = torch.ones(S, S, dtype=torch.bool, device=device).tril()
        mask = ((causal & key_valid[:, None, :]) | torch.eye(S, dtype=torch.bool, device=device))[:, None]

        prompt_len = p_valid.sum(-1)
        fed_pos = prompt_len[row_prompt][:, None] + arange(Tf)[None, :]
        # predictor of token j of row r: the prompt's last state for j = 0, else row r's fed state j - 1
        last_prompt_token = prompt_len.cumsum(0) - 1  # (U,): each prompt ends its packed run
        fed_start = Mp + fed.cumsum(0) - fed  # (N,)
        cols = arange(T)[None, :]
        pred = torch.where(cols == 0, last_prompt_token[row_prompt][:, None], fed_start[:, None] + cols - 1)
        in_completion = completion_mask.bool()
        return PackedBatch(
            ids=torch.cat([input_ids[first, :P][p_valid], input_ids[:, P : P + Tf][f_valid]]),
            pos=torch.cat([mask_positions(p_valid.long())[p_valid], fed_pos[f_valid]]),
            spread=spread,
            collect=collect,
            mask=mask,
            predictors=pred[in_completion],
            targets=input_ids[:, P:][in_completion],
            completion=in_completion,
        )


def supports(model) -> bool:
    """Llama/Qwen2/Mistral layouts: the ones the static-cache decoder also runs."""
    return StaticCacheDecoder.supports(model)


def _layer(layer, x, cos, sin, batch: PackedBatch, dropout: float) -> torch.Tensor:
    """One decoder layer over the packed tokens x (M, H)."""
    attn = layer.self_attn
    D = attn.head_dim
    M = x.shape[0]
    N, _, S, _ = batch.mask.shape
    h = layer.input_layernorm(x)
    q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)
    q = q.view(M, -1, D)
    k = k.view(M, -1, D)
    q = (q * cos + rotate_half(q) * sin).view(M, -1)
    k = (k * cos + rotate_half(k) * sin).view(M, -1)
    # packed -> (N, heads, S, D); a prompt's tokens go to each of its rows (the gather sums their gradients).
    # index_select, not x[index]: its backward (index_add) is 5-7x faster on CPU than advanced indexing's
    q, k, v = (t.index_select(0, batch.spread).view(N, S, -1, D).transpose(1, 2) for t in (q, k, v))
    grouped = q.shape[1] != k.shape[1]
    if grouped and q.device.type != "cpu":  # CUDA's kernel that takes a mask does not take grouped heads
        k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
        grouped = False
    o = F.scaled_dot_product_attention(
        q, k, v, attn_mask=batch.mask, dropout_p=dropout, scale=attn.scaling, enable_gqa=grouped
    )
    o = o.transpose(1, 2).reshape(N * S, -1).index_select(0, batch.collect)
    x = x + attn.o_proj(o)
    return x + layer.mlp(layer.post_attention_layernorm(x))


def packed_states(model, batch: PackedBatch) -> torch.Tensor:
    """Final-norm states (K, H) that predict each completion token, in ``batch.targets`` order."""
    body = model.model
    dropout = getattr(body.layers[0].self_attn, "attention_dropout", 0.0) if model.training else 0.0
    x = body.embed_tokens(batch.ids)
    cos, sin = body.rotary_emb(x[None], batch.pos[None])
    cos, sin = cos[0][:, None, :], sin[0][:, None, :]  # (M, 1, D): broadcast over heads
    for layer in body.layers:
        # activation checkpointing enabled on the model: keep the layer's input, recompute it in the backward
        if getattr(layer, "gradient_checkpointing", False) and layer.training and torch.is_grad_enabled():
            x = checkpoint(_layer, layer, x, cos, sin, batch, dropout, use_reentrant=False)
        else:
            x = _layer(layer, x, cos, sin, batch, dropout)
    return body.norm(x.index_select(0, batch.predictors))
