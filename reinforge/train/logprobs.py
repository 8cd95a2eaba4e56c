"""Per-token log-probs of chosen tokens, without keeping full-vocabulary logits for the whole batch."""

from __future__ import annotations

import torch


def gather_logps(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature)[token] for (..., V) logits and (...) tokens."""
    logits = logits.float()
    if temperature != 1.0 and temperature > 0:
        logits = logits / temperature
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


def completion_hidden(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_completion: int
) -> torch.Tensor:
    """Decoder states (N, T, H) of the positions that predict the last ``T = n_completion`` tokens.

    Positions come from the attention mask so left padding is harmless. PPO's value head reads the same states.
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    hidden = body(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
    ).last_hidden_state
    return hidden[:, -n_completion - 1 : -1, :]  # the state before each completion token predicts it


def logps_from_hidden(
    model, h: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, chunk_size: int = 64
) -> torch.Tensor:
    """Log-probs (N, T) of ``targets`` from states ``h`` (N, T, H), ``chunk_size`` rows through the LM head at a time."""
    head = model.get_output_embeddings()
    out = []
    for i in range(0, h.shape[0], chunk_size):
        logits = head(h[i : i + chunk_size])
        out.append(gather_logps(logits, targets[i : i + chunk_size], temperature))
    return torch.cat(out, 0)
