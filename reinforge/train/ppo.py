"""PPO for RLHF: a policy and a value function against a reward model (or any grader), with a KL penalty.

Each step reads as its phases: 1. rollout (one completion per prompt, the RFT generation backend) ->
2. score (reward model or grader) -> 3. per-token rewards r_t = -beta * (log pi - log pi_ref)_t, plus
the score on the last token [Ziegler et al., 2019] -> 4. GAE advantages and returns [Schulman et al.,
2016], whitened -> 5. ``ppo_epochs`` x ``num_minibatches`` updates of the clipped policy loss plus
``vf_coef`` times the clipped value loss [Schulman et al., 2017] -> 6. the adaptive KL controller moves
beta towards ``kl_target`` -> 7. log, evaluate, checkpoint.

The value function is a linear head on the policy's own decoder states (``critic: value_head``) or
on a separate copy of the starting model (``critic: separate``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import model_validator
from torch import nn
from transformers import AutoModelForCausalLM

from reinforge.errors import ConfigError
from reinforge.graders import as_grader
from reinforge.graders.reward_model import RewardModelGrader
from reinforge.models.generation import HFBackend
from reinforge.tasks import get_task
from reinforge.train import distributed
from reinforge.train.agent import AgentSettings, agent_bar, agent_finish, generated_first
from reinforge.train.batching import load_prompt_rows, steps_for
from reinforge.train.evaluate import evaluate_policy
from reinforge.train.logprobs import completion_hidden, logps_from_hidden, per_token_logps
from reinforge.train.losses import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_penalised_rewards,
    masked_mean,
)
from reinforge.train.optim_config import OptimSettings
from reinforge.train.rollout import StepRollouts, grader_guard
from reinforge.train.skeleton import Run
from reinforge.train.warmup import load_model


class PPOConfig(OptimSettings):
    """Every knob of a PPO run."""

    # -- model, data and reward
    model: str = (
        "tiny:sentiment:1m"  # the SFT policy (local dir, hub id, tiny:<task>:<size>); also the reference
    )
    init_from: str | None = None  # start the policy from these weights instead (e.g. an earlier RLHF round)
    task: str | None = None  # built-in task: prompts (when no files) and the eval grader
    train_file: str | None = None  # prompts as OpenAI RFT JSONL ({"messages": [...], ...})
    validation_file: str | None = None  # validation rows, in train_file's format
    validation_split: float | None = None  # hold out this fraction of train_file when no validation_file
    train_examples: int = 2000  # rows drawn from a built-in task
    validation_examples: int = 64  # validation rows drawn from a built-in task
    reward_model: str | None = None  # a `reinforge rm` output dir; reward = (raw - mu) / sigma
    grader: dict | str | None = None  # or any grader (OpenAI grader JSON or path); default: the task's
    eval_grader: dict | str | None = (
        None  # measured on validation only (default: the task's grader when the reward is a RM)
    )
    # stop when more than this fraction of a step's grades fail (first step, or 3 in a row); null: all; 1: never
    max_grader_error_fraction: float | None = None
    output_dir: str = "runs/ppo"  # run directory: config.yaml, metrics.jsonl, checkpoints/, final/
    seed: int = 0  # seed of data order, sampling and initialisation
    # -- sampling
    prompts_per_step: int = 64  # B: completions per rollout batch
    max_new_tokens: int = 32  # most tokens generated per completion
    temperature: float = 1.0  # sampling temperature of the rollouts
    top_p: float = 1.0  # nucleus sampling: sample from the smallest token set with this probability
    # -- optimisation (steps, epochs, the schedule, weight decay, clipping: OptimSettings)
    learning_rate: float = 1e-5  # AdamW peak learning rate
    ppo_epochs: int = 4  # passes over each rollout batch
    num_minibatches: int = 4  # optimizer steps per pass
    clip_eps: float = 0.2  # policy ratio clip
    clip_value: float = 0.2  # value clip around the rollout-time values
    vf_coef: float = 0.1  # weight of the value loss
    gamma: float = 1.0  # discount per token
    gae_lambda: float = 0.95  # GAE lambda: lower trusts the value function more
    whiten_advantages: bool = True  # normalise advantages to mean 0, std 1 per batch
    critic: Literal["value_head", "separate"] = "value_head"  # a head on the policy, or a separate copy
    # -- KL control
    beta: float = 0.05  # initial KL coefficient
    kl_target: float | None = 4.0  # nats per sequence; None keeps beta fixed
    kl_horizon: int = 10_000  # the controller's horizon, in sequences
    # -- evaluation and checkpoints
    eval_interval: int = 10  # steps between validations (0: none in between)
    eval_samples: int = 4  # sampled completions per validation prompt
    save_interval: int = 50  # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 1  # newest checkpoints kept
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bfloat16 on GPU, float32 on CPU
    device: str = "auto"  # auto: cuda when available, else cpu
    logprob_chunk: int = 64  # sequences per LM-head chunk when computing log-probs
    progress: bool = True  # show a progress bar
    agent: AgentSettings | None = None  # tools, episodes (train/agent.py); rows with `tools` imply it

    @model_validator(mode="after")
    def _check(self) -> PPOConfig:
        if self.prompts_per_step % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide prompts_per_step={self.prompts_per_step}"
            )
        if self.ppo_epochs < 1 or self.num_minibatches < 1:
            raise ValueError("ppo_epochs and num_minibatches must be >= 1")
        if self.kl_target is not None and self.kl_target <= 0:
            raise ValueError(f"kl_target={self.kl_target}: must be > 0 (or null for a fixed beta)")
        if not 0 <= (self.max_grader_error_fraction or 0) <= 1:
            raise ValueError(f"max_grader_error_fraction={self.max_grader_error_fraction}: must be in [0, 1]")
        if not (self.task or self.train_file):
            raise ValueError("give train_file (prompts as RFT JSONL) or task (a built-in task)")
        return self


class ActorCritic(nn.Module):
    """The policy (a causal LM) plus a value head, on the policy's decoder or on a separate critic."""

    def __init__(self, policy: Any, critic: Any = None):  # HF causal LMs (``config``, ``save_pretrained``)
        super().__init__()
        self.policy, self.critic = policy, critic
        hidden = policy.config.hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, ids, attn, T: int, temperature: float = 1.0, chunk: int = 64):
        """(log-probs, values), both (N, T), for the last T tokens."""
        h = completion_hidden(self.policy, ids, attn, T)  # (N, T, H)
        logps = logps_from_hidden(self.policy, h, ids[:, -T:], temperature, chunk)
        hv = h if self.critic is None else completion_hidden(self.critic, ids, attn, T)
        return logps, self.value_head(hv.float()).squeeze(-1)

    def save_pretrained(self, path) -> None:
        """The policy as a plain HF model, with the value function beside it (``value_head.pt``, ``critic/``)."""
        path = Path(path)
        self.policy.save_pretrained(path)
        torch.save(self.value_head.state_dict(), path / "value_head.pt")
        if self.critic is not None:
            self.critic.save_pretrained(path / "critic")


# ---------------------------------------------------------------------------------------------- setup


def load_reward(cfg: PPOConfig, reward_fn=None):
    """The grader PPO maximises: ``reward_fn`` > ``reward_model`` (standardised raw score) > grader > task."""
    if reward_fn is not None:
        return as_grader(reward_fn)
    if cfg.reward_model:
        return RewardModelGrader(
            {
                "type": "reward_model",
                "name": "reward_model",
                "model": cfg.reward_model,
                "calibration": "standard",
            }
        )
    if cfg.grader is not None:
        return as_grader(cfg.grader)
    if cfg.task:
        return get_task(cfg.task).grader
    raise ConfigError(
        "ppo: give reward_model (a `reinforge rm` output dir), a grader, or a task with a grader"
    )


def load_eval_grader(cfg: PPOConfig):
    if cfg.eval_grader is not None:
        return as_grader(cfg.eval_grader)
    if cfg.task and (cfg.reward_model or cfg.grader is not None):
        return get_task(cfg.task).grader
    return None


# ---------------------------------------------------------------------------------------------- update


def check_minibatches(cfg: PPOConfig, world: int) -> None:
    """Data parallel: each of the ``world`` ranks updates on its ``prompts_per_step / world`` rows, in
    ``num_minibatches`` equal minibatches (more than one: each drawn from the rank's own rows)."""
    if world > 1 and cfg.prompts_per_step % (world * cfg.num_minibatches):
        fit = world * cfg.num_minibatches * max(1, cfg.prompts_per_step // (world * cfg.num_minibatches))
        raise ConfigError(
            f"prompts_per_step={cfg.prompts_per_step}: on {world} ranks each rank's share must split into "
            f"num_minibatches={cfg.num_minibatches} equal minibatches; set --set prompts_per_step={fit} "
            "(or fewer num_minibatches, or run on fewer processes)"
        )


def ppo_update(
    ac: ActorCritic, ref, optimizer, roll, cfg: PPOConfig, beta: float, step_seed: int
) -> dict[str, float]:
    """Phases 3-5: KL-penalised per-token rewards, GAE, then the clipped policy and value updates."""
    device = next(ac.parameters()).device
    ids, attn, mask = (
        roll.input_ids.to(device),
        roll.attention_mask.to(device),
        roll.token_mask.to(device),  # episodes: generated tokens only
    )
    T, N = roll.n_completion, ids.shape[0]
    fmask = mask.float()
    with torch.no_grad():
        b_logp, b_values = ac(ids, attn, T, cfg.temperature, cfg.logprob_chunk)  # (N, T) each
        b_ref = per_token_logps(ref, ids, attn, T, cfg.temperature, cfg.logprob_chunk)
        b_scores = roll.rewards.flatten().to(device)  # (N,)
        # over the generated tokens as one sequence (an episode's tool/environment tokens moved out)
        order = generated_first(mask)
        c_mask = mask.gather(1, order)
        c_rewards, c_kl = kl_penalised_rewards(
            b_scores, b_logp.gather(1, order), b_ref.gather(1, order), c_mask, beta
        )
        c_adv, c_returns = gae(c_rewards, b_values.gather(1, order), c_mask, cfg.gamma, cfg.gae_lambda)
        b_kl, b_adv, b_returns = (x.new_zeros(x.shape).scatter(1, order, x) for x in (c_kl, c_adv, c_returns))
        if cfg.whiten_advantages:  # over every rank's tokens (data parallel), as one process would
            b_adv = distributed.whiten_across(b_adv, mask)
    mb_size = N // cfg.num_minibatches
    gen = torch.Generator().manual_seed(step_seed)
    stats: dict[str, list[float]] = {
        k: [] for k in ("policy", "value", "clip", "vclip", "approx_kl", "grad_norm")
    }
    params = [p for p in ac.parameters() if p.requires_grad]
    ac.train()
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(N, generator=gen)
        for mb in range(cfg.num_minibatches):
            idx = order[mb * mb_size : (mb + 1) * mb_size].to(device)
            mb_mask = mask[idx]
            logp, values = ac(ids[idx], attn[idx], T, cfg.temperature, cfg.logprob_chunk)
            pg, clipped = clipped_policy_loss(logp, b_logp[idx], b_adv[idx], cfg.clip_eps)
            vl, vclipped = clipped_value_loss(values, b_values[idx], b_returns[idx], cfg.clip_value)
            # token means over every rank's minibatch tokens: this rank's means times its share of them
            share = distributed.share(mb_mask.sum().item())
            policy_loss, value_loss = masked_mean(pg, mb_mask) * share, masked_mean(vl, mb_mask) * share
            loss = policy_loss + cfg.vf_coef * value_loss
            gn = distributed.optimizer_step(optimizer, loss, params, cfg.max_grad_norm)
            stats["policy"].append(policy_loss.item())
            stats["value"].append(value_loss.item())
            stats["clip"].append(masked_mean(clipped.float(), mb_mask).item() * share)
            stats["vclip"].append(masked_mean(vclipped.float(), mb_mask).item() * share)
            stats["approx_kl"].append(masked_mean(b_logp[idx] - logp.detach(), mb_mask).item() * share)
            stats["grad_norm"].append(gn)
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    # logged over every rank's rows (data parallel): scores, KL and the value fit of the whole batch
    b_scores, seq_kl = distributed.gather_rows(b_scores), distributed.gather_rows(b_kl.sum(-1))  # (N,)
    b_returns, b_values = distributed.gather_rows(b_returns), distributed.gather_rows(b_values)
    fmask = distributed.gather_rows(fmask)

    # over real tokens only: padding would pull both variances toward zero
    def masked_var(x: torch.Tensor) -> torch.Tensor:
        return masked_mean((x - masked_mean(x, fmask)) ** 2, fmask)

    explained = 1.0 - masked_var(b_returns - b_values) / (masked_var(b_returns) + 1e-8)
    figures = {
        "loss/policy": mean(stats["policy"]),
        "loss/value": mean(stats["value"]),
        "clip/fraction": mean(stats["clip"]),
        "clip/value_fraction": mean(stats["vclip"]),
        "kl/approx_update": mean(stats["approx_kl"]),
    }
    return {
        "reward/score": b_scores.mean().item(),
        "reward/total": (b_scores - beta * seq_kl).mean().item(),
        "kl/seq": seq_kl.mean().item(),
        "kl/beta": beta,
        **distributed.mean_fields(figures),
        "value/explained_variance": explained.item(),
        "grad/norm": mean(stats["grad_norm"]),
    }


# ---------------------------------------------------------------------------------------------- loop


def train_ppo(
    cfg: PPOConfig,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    reward_fn: Callable | None = None,
) -> dict[str, Any]:
    """Run (or resume) PPO to ``cfg.steps`` total steps; returns the summary written to ``summary.json``."""
    with Run(cfg, "ppo", "ppo", resume, on_step, should_stop) as run:
        train_rows, val_rows = load_prompt_rows(cfg)
        grader, eval_grader = load_reward(cfg, reward_fn), load_eval_grader(cfg)
        guard = grader_guard(cfg, grader, train_rows, val_rows, reward_fn)  # a template typo stops here
        total = steps_for(cfg.steps, cfg.epochs, len(train_rows), cfg.prompts_per_step)
        last = run.last

        torch.manual_seed(cfg.seed)
        dtype = None if cfg.dtype == "auto" else cfg.dtype
        start_from = str(last) if last else (cfg.init_from or cfg.model)
        policy, tok = load_model(start_from, dtype=dtype, device=cfg.device, trainable=True)
        ref, _ = load_model(cfg.model, dtype=dtype, device=cfg.device)
        critic = None
        if cfg.critic == "separate":
            if last is not None:
                critic = AutoModelForCausalLM.from_pretrained(last / "critic", dtype=ref.dtype).to(ref.device)
            else:
                critic = copy.deepcopy(ref).requires_grad_(True)
        ac = ActorCritic(policy, critic).to(next(policy.parameters()).device)
        if last is not None:
            ac.value_head.load_state_dict(torch.load(last / "value_head.pt"))
        optimizer, scheduler = run.optimizer(ac, tok, total)
        check_minibatches(cfg, distributed.world_size())
        rollouts = StepRollouts(HFBackend(policy, tok), grader, train_rows, tok, cfg)
        kl_ctl = AdaptiveKLController(run.state.get("beta", cfg.beta), cfg.kl_target or 1.0, cfg.kl_horizon)

        def run_eval(step: int) -> dict:
            res = evaluate_policy(
                policy,
                ref,
                tok,
                val_rows,
                grader,
                eval_grader,
                cfg.eval_samples,
                cfg.max_new_tokens,
                cfg.temperature,
                seed=cfg.seed + 17,
                chunk=cfg.logprob_chunk,
            )
            rec = {
                "eval/reward_mean": res["reward_mean"],
                "eval/kl": res["kl"],
                "eval/length_mean": res["length_mean"],
            }
            if "extra_reward_mean" in res:
                rec["eval/eval_grader_mean"] = res["extra_reward_mean"]
            return rec

        for step in run.steps(run_eval if val_rows else None, lambda step: {"beta": kl_ctl.value}):
            t0 = time.perf_counter()
            # 1-2. rollout and score: one completion for each of the step's prompts
            roll = rollouts(step, n=1)
            # 3-5. rewards, advantages, update
            upd = ppo_update(ac, ref, optimizer, roll, cfg, kl_ctl.value, step_seed=cfg.seed * 7919 + step)
            scheduler.step()
            # 6. KL control
            if cfg.kl_target is not None:
                kl_ctl.update(upd["kl/seq"], cfg.prompts_per_step)
            # 7. log (the skeleton evaluates and checkpoints): every rank's lengths and grades
            roll = distributed.for_logging(roll)
            rec = {
                "step": step,
                "kind": "train",
                "reward/mean": upd["reward/score"],
                **upd,
                "length/mean": roll.completion_mask.sum(-1).float().mean().item(),
                **guard.fields(roll.grades),
                **roll.agent,
                "lr": scheduler.get_last_lr()[0],
                "perf/step_seconds": time.perf_counter() - t0,
                "perf/gen_seconds": roll.gen_seconds,
            }
            bar = {
                "score": rec["reward/score"],
                "kl": rec["kl/seq"],
                "beta": rec["kl/beta"],
                **agent_bar(roll.agent),
            }
            run.log(rec, bar={**bar, **guard.bar_fields()})
            guard.check(step, roll.grades)  # a grader failing on the first step (or 3 in a row) stops here
        return run.finish(
            {
                "baseline_val_reward": run.eval_value("eval/reward_mean", first=True),
                "final_val_reward": run.eval_value("eval/reward_mean"),
                "baseline_eval_grader": run.eval_value("eval/eval_grader_mean", first=True),
                "final_eval_grader": run.eval_value("eval/eval_grader_mean"),
                "final_kl": run.eval_value("eval/kl"),
                "kl_target": cfg.kl_target,
                "final_beta": kl_ctl.value,
                **agent_finish(run.dir, run.records()),  # and agent.png
                **guard.summary(run.records("train")),
            },
            plot=("reward/score", "eval/reward_mean"),
        )
