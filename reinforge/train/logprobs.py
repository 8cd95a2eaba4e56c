"""Per-token log-probs of chosen tokens, without keeping full-vocabulary logits for the whole batch."""

from __future__ import annotations

import torch

from reinforge.models.decoder import mask_positions
from reinforge.models.generation import cache_kwargs, output_cache, scaled_logits
from reinforge.models.packed import PackedBatch, packed_states, supports


def gather_logps(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature)[token] for (..., V) logits and (...) tokens."""
    logits = scaled_logits(logits, temperature)
    return logits.gather(-1, tokens[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def per_token_logps(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    temperature: float = 1.0,
    chunk_size: int = 64,
) -> torch.Tensor:
    """Log-probs (N, T) of the last ``T = n_completion`` tokens of ``input_ids`` (N, P+T).

    Positions come from the attention mask so left padding is harmless. Only the hidden states of the
    completion positions go through the LM head, ``chunk_size`` rows at a time, so the (N, T, V) logits
    tensor is never materialised at once.
    """
    h = completion_hidden(model, input_ids, attention_mask, n_completion)
    return logps_from_hidden(model, h, input_ids[:, -n_completion:], temperature, chunk_size)


def decoder_body(model):
    """The transformer body under the LM head (through peft wrappers too)."""
    return model.get_decoder() if hasattr(model, "get_decoder") else model.model


def completion_hidden(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_completion: int
) -> torch.Tensor:
    """Decoder states (N, T, H) of the positions that predict the last ``T = n_completion`` tokens.

    Positions come from the attention mask so left padding is harmless. PPO's value head reads the same states.
    """
    position_ids = mask_positions(attention_mask)
    hidden = decoder_body(model)(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
    ).last_hidden_state
    return hidden[:, -n_completion - 1 : -1, :]  # the state before each completion token predicts it


# from this vocabulary size on, the LM head's logits are recomputed in the backward pass rather than kept
# (ChosenTokenLogps): on a small vocabulary the recompute costs time and saves no memory worth having
# (benchmarks/README.md, "Measurement notes")
RECOMPUTE_MIN_VOCAB = 4096


def logps_from_hidden(
    model, h: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, chunk_size: int = 64
) -> torch.Tensor:
    """Log-probs of ``targets`` (...) from states ``h`` (..., H), through the LM head ``chunk_size`` rows of
    the leading dimension at a time, without keeping any chunk's full-vocabulary logits for the backward
    pass (:class:`ChosenTokenLogps`)."""
    head = model.get_output_embeddings()
    # small vocabularies: plain autograd (its logits are small, and it has less per-call overhead);
    # wrapped heads (adapters, quantisation) too
    if type(head) is not torch.nn.Linear or head.weight.shape[0] < RECOMPUTE_MIN_VOCAB:
        out = []
        for i in range(0, h.shape[0], chunk_size):
            out.append(gather_logps(head(h[i : i + chunk_size]), targets[i : i + chunk_size], temperature))
        return torch.cat(out, 0)
    per_row = targets[0].numel() if targets.dim() > 1 else 1  # tokens per leading row
    flat = ChosenTokenLogps.apply(
        h.reshape(-1, h.shape[-1]),
        head.weight,
        head.bias,
        targets.reshape(-1),
        temperature,
        chunk_size * per_row,
    )
    return flat.view(targets.shape)


class ChosenTokenLogps(torch.autograd.Function):
    """log softmax((h W^T + b) / temperature)[target] for each row of h (K, H), a chunk of rows at a time.

    Autograd through ``head(h)`` and ``log_softmax`` would keep every chunk's (rows, V) logits, and their
    fp32 copy, until the backward pass: the whole batch's full-vocabulary logits after all (~12 GB for 32
    completions of 256 tokens over Qwen's 152k vocabulary). This keeps only each row's log-sum-exp and
    recomputes a chunk's logits in the backward pass: one more matmul per chunk, memory for one chunk.
    Gradients: d lp / d z = onehot(target) - softmax(z), scaled by 1 / temperature.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, temperature: float, chunk: int):
        K = h.shape[0]
        out = torch.empty(K, dtype=torch.float32, device=h.device)
        lse = torch.empty(K, dtype=torch.float32, device=h.device)
        for i in range(0, K, chunk):
            z = ChosenTokenLogps._logits(h[i : i + chunk], weight, bias, temperature)
            lse[i : i + chunk] = torch.logsumexp(z, dim=-1)
            out[i : i + chunk] = z.gather(-1, targets[i : i + chunk, None]).squeeze(-1) - lse[i : i + chunk]
        ctx.save_for_backward(h, weight, bias, targets, lse)
        ctx.temperature, ctx.chunk = temperature, chunk
        return out

    @staticmethod
    def _logits(h, weight, bias, temperature: float) -> torch.Tensor:
        return scaled_logits(torch.nn.functional.linear(h, weight, bias), temperature)

    @staticmethod
    def backward(ctx, grad):
        h, weight, bias, targets, lse = ctx.saved_tensors
        T, chunk = ctx.temperature, ctx.chunk
        scale = 1.0 / T if T != 1.0 and T > 0 else 1.0
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        dh = torch.empty_like(h) if need_h else None
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        db = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_b else None
        for i in range(0, h.shape[0], chunk):
            g = grad[i : i + chunk, None].float()
            p = torch.exp(
                ChosenTokenLogps._logits(h[i : i + chunk], weight, bias, T) - lse[i : i + chunk, None]
            )
            dz = (p * -g).scatter_add_(-1, targets[i : i + chunk, None], g)  # g * (onehot - softmax)
            if scale != 1.0:
                dz = dz * scale
            if need_h:
                dh[i : i + chunk] = (dz.to(weight.dtype) @ weight).to(h.dtype)
            if need_w:
                dw += dz.T @ h[i : i + chunk].float()
            if need_b:
                db += dz.sum(0)
        return (
            dh,
            dw.to(weight.dtype) if need_w else None,
            db.to(bias.dtype) if need_b else None,
            None,
            None,
            None,
        )


def shared_prompt_hidden(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    prompt_of: torch.Tensor,
) -> torch.Tensor:
    """:func:`completion_hidden`, with each distinct prompt run through the decoder once.

    In a GRPO batch the G completions of a prompt share it, so a plain forward repeats the prompt's
    work G times. Rows with equal ``prompt_of`` labels share a prompt: the distinct prompts go through
    the decoder once, their keys and values are gathered per row (gradients flow back through the
    gather), and only the completion tokens run per row. Same attention and positions, so the same
    states up to float rounding.
    """
    T = n_completion
    P = input_ids.shape[1] - T
    N = input_ids.shape[0]
    body = decoder_body(model)
    position_ids = mask_positions(attention_mask)
    _, row_prompt = torch.unique(prompt_of, return_inverse=True)
    rows = torch.arange(N, device=input_ids.device)
    first = torch.full((int(row_prompt.max()) + 1,), N, device=input_ids.device)
    first = first.scatter_reduce(0, row_prompt, rows, reduce="amin")  # one row holding each prompt
    prompt = body(
        input_ids=input_ids[first, :P],
        attention_mask=attention_mask[first, :P],
        position_ids=position_ids[first, :P],
        use_cache=True,
    )
    cache = output_cache(prompt)
    cache.batch_select_indices(row_prompt)  # (U, ...) -> (N, ...): every row sees its prompt's keys
    completion = body(
        input_ids=input_ids[:, P:],
        attention_mask=attention_mask,
        position_ids=position_ids[:, P:],
        **cache_kwargs(body, cache),
        use_cache=False,
    ).last_hidden_state
    last_prompt_state = prompt.last_hidden_state[row_prompt, -1:, :]  # predicts completion token 0
    return torch.cat([last_prompt_state, completion[:, :-1, :]], dim=1)


def packed_token_logps(
    model, batch: PackedBatch, temperature: float = 1.0, chunk_size: int = 64
) -> torch.Tensor:
    """(N, T) log-probs of a grouped batch from the padding-free forward (:mod:`reinforge.models.packed`);
    0 past each completion's end. ``chunk_size`` rows' worth of tokens go through the LM head at a time."""
    h = packed_states(model, batch)
    lp = logps_from_hidden(model, h, batch.targets, temperature, chunk_size * batch.completion.shape[1])
    return torch.zeros(batch.completion.shape, dtype=lp.dtype, device=lp.device).masked_scatter(
        batch.completion, lp
    )


def grouped_token_logps(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    prompt_of: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int = 64,
    buckets: int = 1,
) -> torch.Tensor:
    """:func:`per_token_logps` for a batch of grouped completions, with less wasted work.

    Two savings, neither changing a value: each prompt runs once per bucket rather than once per
    completion (:func:`shared_prompt_hidden`), and rows are sorted by completion length into
    ``buckets`` slices, each cut to its own longest completion, so right padding is mostly not
    computed. Positions past a completion's end get log-prob 0 (they are masked everywhere).

    On CPU one bucket is the default: smaller matmuls lose more speed than the skipped padding saves
    (benchmarks/README.md, "Measurement notes").
    """
    N, T = completion_mask.shape
    P = input_ids.shape[1] - T
    lengths = completion_mask.sum(-1)
    order = torch.argsort(lengths, descending=True, stable=True)
    out = torch.zeros(N, T, dtype=torch.float32, device=input_ids.device)
    n_buckets = max(1, min(buckets, N))
    size = -(-N // n_buckets)
    for start in range(0, N, size):
        rows = order[start : start + size]
        t = max(1, int(lengths[rows].max()))
        ids = input_ids[rows, : P + t]
        h = shared_prompt_hidden(model, ids, attention_mask[rows, : P + t], t, prompt_of[rows])
        lp = logps_from_hidden(model, h, ids[:, P:], temperature, chunk_size)
        lp = lp.masked_fill(completion_mask[rows, :t] == 0, 0.0)
        out = out.index_put((rows[:, None], torch.arange(t, device=out.device)[None, :]), lp)
    return out


class RolloutLogps:
    """Per-token log-probs (rows, T) of one rollout's sampled tokens under any model, for any subset of rows,
    by the forward ``logprob_forward`` names (all give the same values):

    - ``packed``: :func:`packed_token_logps`, no padding (Llama-family models; others fall back to grouped);
    - ``grouped``: :func:`grouped_token_logps`, each prompt once, completions padded, ``buckets`` length buckets;
    - ``padded``: :func:`per_token_logps`, one plain forward over the whole padded rows;
    - ``auto``: packed on CPU, grouped elsewhere (the one measured on GPUs so far).

    The packed layout of a row set is built once and reused: the reference and the policy see the same rows.
    """

    def __init__(
        self, policy, ids, attn, cmask, prompt_of, forward: str, temperature: float, chunk: int, buckets: int
    ):
        if forward == "auto":
            forward = "packed" if ids.device.type == "cpu" else "grouped"
        if forward == "packed" and not supports(policy):  # the policy's architecture decides for all models
            forward = "grouped"
        self.ids, self.attn, self.cmask, self.prompt_of = ids, attn, cmask, prompt_of
        self.forward, self.temperature, self.chunk, self.buckets = forward, temperature, chunk, buckets
        self.layouts: dict[tuple[int, ...], PackedBatch] = {}

    def __call__(self, model, rows: torch.Tensor) -> torch.Tensor:
        if self.forward == "packed":
            key = tuple(rows.tolist())
            if key not in self.layouts:  # the rows are gathered once, for the layout
                self.layouts[key] = PackedBatch.build(
                    self.ids[rows], self.attn[rows], self.cmask[rows], self.prompt_of[rows]
                )
            return packed_token_logps(model, self.layouts[key], self.temperature, self.chunk)
        ids, attn = self.ids[rows], self.attn[rows]
        if self.forward == "padded":
            return per_token_logps(model, ids, attn, self.cmask.shape[1], self.temperature, self.chunk)
        return grouped_token_logps(
            model,
            ids,
            attn,
            self.cmask[rows],
            self.prompt_of[rows],
            self.temperature,
            self.chunk,
            self.buckets,
        )
