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
    per_token: torch.Tensor,
    mask: torch.Tensor,
    loss_type: LossType = "grpo",
    max_completion_length: int | None = None,
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


# ---------------------------------------------------------------------------------------------- PPO (RLHF)


def whiten(
    x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """(x - mean) / std over the masked entries (any shape); ``shift_mean=False`` keeps the mean (rewards).

    >>> whiten(torch.tensor([1.0, 3.0])).tolist()
    [-0.7071067690849304, 0.7071067690849304]
    """
    if mask is None:
        mask = torch.ones_like(x)
    mask = mask.to(x.dtype)
    n = mask.sum().clamp(min=1.0)
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / (n - 1).clamp(min=1.0)  # unbiased, as torch.std
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    gae_lambda: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016, eq. 16), per token of each completion.

    rewards, values, mask: (N, T). The episode ends after the last masked token, so V(s_T) = 0 there.
    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lambda * A_{t+1}.
    Returns (advantages, returns = advantages + values), both (N, T) and zero off the mask.

    >>> A, R = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]), torch.ones(1, 2), 1.0, 1.0)
    >>> A.tolist(), R.tolist()
    ([[0.5, 0.5]], [[1.0, 1.0]])
    """
    mask = mask.to(values.dtype)
    values = values * mask
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * gae_lambda * last) * mask[:, t]
        adv[:, t] = last
    return adv, (adv + values) * mask


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_range: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped value loss per token: 0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2).

    values, old_values, returns: (N, T). Returns (loss (N, T), clipped (N, T) bool: the clipped term won).
    """
    v_clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (v_clipped - returns) ** 2
    return 0.5 * torch.maximum(loss_unclipped, loss_clipped), loss_clipped > loss_unclipped


def kl_penalised_rewards(
    scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLHF's per-token reward (Ziegler et al., 2019): -beta * (log pi - log pi_ref) on every token,
    plus the sequence ``score`` on the last completion token.

    scores: (N,); logp, ref_logp, mask: (N, T). Returns (rewards (N, T), kl (N, T)), zero off the mask.
    """
    mask = mask.to(logp.dtype)
    kl = (logp - ref_logp) * mask  # k1: its sum over the sequence is an unbiased estimate of KL(pi || pi_ref)
    rewards = -beta * kl
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # (N,) index of each sequence's last token
    rewards[torch.arange(rewards.shape[0]), last] += scores.to(rewards.dtype)
    return rewards * mask, kl


class AdaptiveKLController:
    """Ziegler et al. (2019), section 2.2: beta <- beta * (1 + K * clip(KL / target - 1, -0.2, 0.2) * n / horizon).

    ``update`` after each rollout batch with its mean sequence KL; ``value`` is the beta to use.

    >>> c = AdaptiveKLController(0.1, target=4.0, horizon=100)
    >>> round(c.update(8.0, n_steps=100), 4)  # KL twice the target: beta grows by 20 % (K = 1)
    0.12
    """

    def __init__(self, init_beta: float, target: float, horizon: int = 10_000, k_beta: float = 1.0):
        self.value, self.target, self.horizon, self.k_beta = init_beta, target, horizon, k_beta

    def update(self, kl: float, n_steps: int) -> float:
        error = max(-0.2, min(0.2, kl / self.target - 1.0))
        self.value *= 1.0 + self.k_beta * error * n_steps / self.horizon
        return self.value


# ---------------------------------------------------------------------------------------------- reward models


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Pairwise reward-model loss: mean of -log sigmoid(r_chosen - r_rejected - margin).

    chosen, rejected: (B,) scalar rewards; margin: (B,) or a float (Llama 2's margin loss). P(chosen > rejected)
    under Bradley-Terry is sigmoid(r_c - r_r).

    >>> round(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item(), 4)  # log 2
    0.6931
    """
    return -torch.nn.functional.logsigmoid(chosen - rejected - margin).mean()


def plackett_luce_loss(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Listwise reward-model loss: mean negative log-likelihood of full rankings under Plackett-Luce.

    scores: (B, K) rewards in ranked order (best first); mask: (B, K) 1 on real entries (rankings of
    different lengths are right-padded). P(ranking) = prod_k exp(s_k) / sum_{j>=k} exp(s_j). With K = 2
    it equals :func:`bradley_terry_loss`.
    """
    if mask is None:
        mask = torch.ones_like(scores)
    mask = mask.bool()
    s = scores.masked_fill(~mask, float("-inf"))
    # log sum_{j>=k} exp(s_j): a reversed cumulative logsumexp
    tail = torch.logcumsumexp(s.flip(-1), dim=-1).flip(-1)
    per_position = torch.where(mask, s - tail, torch.zeros_like(s))  # (B, K); the last real entry is 0
    return -per_position.sum(-1).mean()


def pairwise_correct(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Per pair (B,): 1 ordered right, 0 wrong, 0.5 a tie. The one tie rule of every accuracy metric:
    a model that cannot tell the two apart (DPO's policy at its reference) scores 0.5, not 0.

    >>> pairwise_correct(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 1.0, 2.0])).tolist()
    [1.0, 0.0, 0.5]
    """
    return (chosen > rejected).float() + 0.5 * (chosen == rejected).float()


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Fraction of pairs the model orders correctly (ties count half, :func:`pairwise_correct`)."""
    return pairwise_correct(chosen, rejected).mean().item()


# ---------------------------------------------------------------------------------------------- DPO


def dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO (Rafailov et al., 2023, eq. 7): -log sigmoid(beta * [(log pi_c - log ref_c) - (log pi_r - log ref_r)]).

    All inputs (B,) sequence log-probs (summed over completion tokens). ``label_smoothing`` > 0 is
    conservative DPO (labels flipped with that probability). Returns (loss, chosen_rewards, rejected_rewards)
    with the implicit rewards beta * log(pi / ref) (detached).
    """
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    logits = beta * (chosen_ratio - rejected_ratio)
    F = torch.nn.functional
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return losses.mean(), beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def ipo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IPO (Azar et al., 2023, eq. 17): (h - 1 / (2 beta))^2 with h the log-ratio difference.

    Inputs (B,). With ``*_lengths`` (B,) the log-ratios are per-token averages (the form the IPO
    authors used, and TRL's). Returns (loss, chosen_rewards, rejected_rewards) like :func:`dpo_loss`.
    """
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    if chosen_lengths is not None and rejected_lengths is not None:
        chosen_ratio = chosen_ratio / chosen_lengths.clamp(min=1)
        rejected_ratio = rejected_ratio / rejected_lengths.clamp(min=1)
    h = chosen_ratio - rejected_ratio
    return (
        ((h - 1.0 / (2.0 * beta)) ** 2).mean(),
        beta * chosen_ratio.detach(),
        beta * rejected_ratio.detach(),
    )
