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

from reinforge.models.generation import StaticCacheDecoder, mask_positions, rotate_half


@dataclass
class PackedBatch:
    """Index bookkeeping for one batch, shared by the policy and reference forwards."""

    prompt_ids: torch.Tensor  # (Mp,) real tokens of the U distinct prompts, row-major
    prompt_pos: torch.Tensor  # (Mp,) their positions
    prompt_slots: torch.Tensor  # (Mp,) their flat slots in the (U, P) padded layout
    prompt_mask: torch.Tensor  # (U, 1, P, P) causal attention over real prompt tokens
    fed_ids: torch.Tensor  # (Mc,) completion tokens fed to the model (all but each row's last)
    fed_pos: torch.Tensor  # (Mc,)
    fed_slots: torch.Tensor  # (Mc,) flat slots in the (N, Tf) padded layout
    fed_mask: torch.Tensor  # (N, 1, Tf, P + Tf): the row's prompt, then its earlier fed tokens
    row_prompt: torch.Tensor  # (N,) which distinct prompt each row continues
    predictors: torch.Tensor  # (K,) for each completion token, the packed state that predicts it
    targets: torch.Tensor  # (K,) the completion tokens, row-major
    completion: torch.Tensor  # (N, T) bool: where those K tokens sit in the padded batch
    shape: tuple[int, int, int, int]  # U, P, N, Tf

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
        _, row_prompt = torch.unique(prompt_of, return_inverse=True)
        U = int(row_prompt.max()) + 1
        rows = torch.arange(N, device=device)
        first = torch.full((U,), N, device=device).scatter_reduce(0, row_prompt, rows, reduce="amin")
        p_valid = attention_mask[first, :P].bool()  # (U, P), left-padded
        prompt_slots = p_valid.flatten().nonzero().squeeze(1)
        causal = torch.ones(P, P, dtype=torch.bool, device=device).tril()
        eye = torch.eye(P, dtype=torch.bool, device=device)  # pad queries see themselves: finite, unused
        prompt_mask = ((causal & p_valid[:, None, :]) | eye)[:, None]

        lengths = completion_mask.sum(-1)
        fed = (lengths - 1).clamp(min=0)
        Tf = int(fed.max()) if N else 0
        fed_valid = torch.arange(Tf, device=device)[None, :] < fed[:, None]  # (N, Tf)
        fed_slots = fed_valid.flatten().nonzero().squeeze(1)
        prompt_len = p_valid.sum(-1)[row_prompt]  # (N,)
        fed_pos = (prompt_len[:, None] + torch.arange(Tf, device=device)[None, :]).flatten()[fed_slots]
        own = torch.ones(Tf, Tf, dtype=torch.bool, device=device).tril() & fed_valid[:, None, :]
        fed_mask = torch.cat([p_valid[row_prompt][:, None, :].expand(N, Tf, P), own], dim=-1)[:, None]

        # predictor of token j of row r: the prompt's last state for j = 0, else fed state j - 1 of row r,
        # indexed into cat([prompt states (Mp), fed states (Mc)])
        Mp = prompt_slots.numel()
        last_prompt_state = p_valid.sum(-1).cumsum(0) - 1  # (U,): each prompt ends its packed run
        fed_start = fed.cumsum(0) - fed  # (N,) where each row's fed run starts
        cols = torch.arange(T, device=device)[None, :]
        pred = torch.where(
            cols == 0, last_prompt_state[row_prompt][:, None], Mp + fed_start[:, None] + cols - 1
        )
        in_completion = completion_mask.bool()
        return PackedBatch(
            prompt_ids=input_ids[first, :P].flatten()[prompt_slots],
            prompt_pos=mask_positions(p_valid.long()).flatten()[prompt_slots],
            prompt_slots=prompt_slots,
            prompt_mask=prompt_mask,
            fed_ids=input_ids[:, P : P + Tf].flatten()[fed_slots],
            fed_pos=fed_pos,
            fed_slots=fed_slots,
            fed_mask=fed_mask,
            row_prompt=row_prompt,
            predictors=pred[in_completion],
            targets=input_ids[:, P:][in_completion],
            completion=in_completion,
            shape=(U, P, N, Tf),
        )


def supports(model) -> bool:
    """Llama/Qwen2/Mistral layouts: the ones the static-cache decoder also runs."""
    return StaticCacheDecoder.supports(model)


def _scatter(x: torch.Tensor, slots: torch.Tensor, rows: int, cols: int, D: int) -> torch.Tensor:
    """Packed (M, heads * D) -> padded (rows, heads, cols, D), zeros where no token sits."""
    padded = x.new_zeros(rows * cols, x.shape[-1]).index_copy(0, slots, x)
    return padded.view(rows, cols, -1, D).transpose(1, 2)


def _layer(layer, x, cos, sin, slots, rows: int, cols: int, mask, prefix=None, dropout: float = 0.0):
    """One decoder layer over packed tokens x (M, H); returns (x, (keys, values) in the padded layout)."""
    attn = layer.self_attn
    D = attn.head_dim
    h = layer.input_layernorm(x)
    q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)
    M = x.shape[0]
    q = q.view(M, -1, D)
    k = k.view(M, -1, D)
    q = (q * cos + rotate_half(q) * sin).view(M, -1)
    k = (k * cos + rotate_half(k) * sin).view(M, -1)
    q, k, v = (_scatter(t, slots, rows, cols, D) for t in (q, k, v))
    keys, values = k, v
    if prefix is not None:  # the row's prompt keys/values come first
        keys, values = torch.cat([prefix[0], k], dim=2), torch.cat([prefix[1], v], dim=2)
    o = F.scaled_dot_product_attention(
        q,
        keys,
        values,
        attn_mask=mask,
        dropout_p=dropout,
        scale=attn.scaling,
        enable_gqa=q.shape[1] != k.shape[1],
    )
    o = o.transpose(1, 2).reshape(rows * cols, -1)[slots]
    x = x + attn.o_proj(o)
    x = x + layer.mlp(layer.post_attention_layernorm(x))
    return x, (k, v)


def packed_states(model, batch: PackedBatch) -> torch.Tensor:
    """Final-norm states (K, H) that predict each completion token, in ``batch.targets`` order."""
    body = model.model
    U, P, N, Tf = batch.shape
    dropout = getattr(body.layers[0].self_attn, "attention_dropout", 0.0) if model.training else 0.0

    def rotary(x, pos):
        cos, sin = body.rotary_emb(x[None], pos[None])
        return cos[0][:, None, :], sin[0][:, None, :]  # (M, 1, D): broadcast over heads

    xp = body.embed_tokens(batch.prompt_ids)
    cos_p, sin_p = rotary(xp, batch.prompt_pos)
    prefixes = []
    for layer in body.layers:
        xp, kv = _layer(layer, xp, cos_p, sin_p, batch.prompt_slots, U, P, batch.prompt_mask, dropout=dropout)
        prefixes.append((kv[0][batch.row_prompt], kv[1][batch.row_prompt]))  # (N, KVH, P, D) per row
    xc = body.embed_tokens(batch.fed_ids)
    if Tf > 0:
        cos_c, sin_c = rotary(xc, batch.fed_pos)
        for layer, prefix in zip(body.layers, prefixes):
            xc, _ = _layer(layer, xc, cos_c, sin_c, batch.fed_slots, N, Tf, batch.fed_mask, prefix, dropout)
    return body.norm(torch.cat([xp, xc])[batch.predictors])
