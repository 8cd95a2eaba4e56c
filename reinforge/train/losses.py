"""The maths of policy-gradient fine-tuning, as small pure functions over tensors.

Shapes: ``B`` prompts, ``G`` samples per prompt (the group), ``N = B*G`` sequences, ``T`` completion tokens.

>>> import torch
>>> group_advantages(torch.tensor([[1.0, 0.0]]), scale_rewards=False)
tensor([[ 0.5000, -0.5000]])
"""

from __future__ import annotations

from typing import Literal

import torch

LossType = Literal["grpo", "dapo", "dr_grpo"]


def group_advantages(rewards: torch.Tensor, scale_rewards: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's group-relative advantage: A_i = (r_i - mean(r_group)) [/ (std(r_group) + eps)].

    rewards: (B, G) -> (B, G). Dr. GRPO drops the std scaling (``scale_rewards=False``) because it
    up-weights groups whose rewards barely differ.
    """
    adv = rewards - rewards.mean(dim=1, keepdim=True)
    if scale_rewards:
        adv = adv / (rewards.std(dim=1, keepdim=True) + eps)
    return adv


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) by Schulman's k3 estimator: exp(q - p) - (q - p) - 1 >= 0, unbiased.

    logp, ref_logp: (N, T) log-probs of the sampled tokens under the policy and the reference.
    """
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps_low: float = 0.2,
    clip_eps_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, per token: -min(ratio * A, clip(ratio, 1-eps_low, 1+eps_high) * A).

    logp, old_logp: (N, T); advantages: (N,) or (N, T). Returns (loss (N, T), clipped (N, T) bool).
    ``clip_eps_high`` > ``clip_eps_low`` is DAPO's clip-higher; None means symmetric.
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    high = clip_eps_low if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + high) * advantages
    loss = -torch.min(unclipped, clipped)
    was_clipped = clipped < unclipped  # the clip changed the objective for this token
    return loss, was_clipped


def aggregate_loss(
    per_token: torch.Tensor, mask: torch.Tensor, loss_type: LossType = "grpo", max_completion_length: int | None = None
) -> torch.Tensor:
    """Reduce a (N, T) per-token loss over the completion ``mask`` (N, T) to a scalar.

    - ``grpo``: mean over each sequence's tokens, then over sequences (the GRPO paper).
    - ``dapo``: sum over all tokens / number of tokens (token-level, DAPO): long answers weigh more.
    - ``dr_grpo``: sum over all tokens / (N * max_completion_length) (Dr. GRPO's constant normaliser).
    """
    mask = mask.to(per_token.dtype)
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dapo":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        T = max_completion_length or per_token.shape[1]
        return (per_token * mask).sum() / (per_token.shape[0] * T)
    raise ValueError(f"loss_type {loss_type!r}: choose grpo, dapo or dr_grpo")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 - C(n-c, k) / C(n, k) for c correct of n samples.

    >>> pass_at_k(4, 1, 4), pass_at_k(4, 0, 2)
    (1.0, 0.0)
    """
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod
