"""Supervised fine-tuning pieces: tokenise chat rows with the loss on assistant tokens only.

``sft_warmup`` is the small in-memory loop that warms tiny models (and the demo's SFT baselines).
"""

from __future__ import annotations

import random

import torch

from reinforge.models.chat import render_prompt
from reinforge.train.optimizer import adamw


def tokenize_chat(
    tokenizer, messages: list[dict], tools: list[dict] | None = None
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for a conversation (with the ``tools`` it may call); labels are -100 except on
    assistant turns (and their EOS), tool calls included."""
    ids: list[int] = []
    labels: list[int] = []
    for i, m in enumerate(messages):
        full = tokenizer(
            render_prompt(tokenizer, messages[: i + 1], add_generation_prompt=False, tools=tools),
            add_special_tokens=False,
        )["input_ids"]
        new = full[
            len(ids) :
        ]  # assumes the rendering of a prefix tokenises as a prefix (true for chat templates)
        if m["role"] == "assistant":
            # the assistant header is part of the prompt, not of what the model must learn to write
            head = tokenizer(
                render_prompt(tokenizer, messages[:i], add_generation_prompt=True, tools=tools),
                add_special_tokens=False,
            )["input_ids"]
            n_head = len(head) - len(ids)
            labels += [-100] * n_head + new[n_head:]
        else:
            labels += [-100] * len(new)
        ids = full
    return ids, labels


def pad_batch(seqs: list[list[int]], labels: list[list[int]], pad_id: int):
    """Right-pad a batch: (input_ids, attention_mask, labels), each (B, L)."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    lab = torch.full((len(seqs), L), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, (s, y) in enumerate(zip(seqs, labels)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(y)] = torch.tensor(y)
        mask[i, : len(s)] = 1
    return ids, mask, lab


def sft_loss(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled (assistant) tokens."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def sft_warmup(
    model,
    tokenizer,
    rows: list[dict],
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    weight_decay: float = 0.0,
    on_step=None,
) -> list[float]:
    """A plain SFT loop over in-memory chat rows (AdamW, cosine decay); returns the loss curve."""
    from reinforge.train.schedule import make_scheduler

    encoded = [tokenize_chat(tokenizer, r["messages"], r.get("tools")) for r in rows]
    device = next(model.parameters()).device
    opt = adamw(model.parameters(), lr, weight_decay, betas=(0.9, 0.98))
    sched = make_scheduler(opt, warmup_steps=min(20, steps // 10), total_steps=steps, kind="cosine")
    rng = random.Random(seed)
    model.train()
    losses = []
    order: list[int] = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += rng.sample(range(len(encoded)), len(encoded))
        batch, order = order[:batch_size], order[batch_size:]
        ids, mask, lab = pad_batch(
            [encoded[i][0] for i in batch], [encoded[i][1] for i in batch], tokenizer.pad_token_id
        )
        loss = sft_loss(model, ids.to(device), mask.to(device), lab.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if on_step:  # e.g. a progress bar: (steps done, loss)
            on_step(len(losses), losses[-1])
    model.eval()
    return losses
