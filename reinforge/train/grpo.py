"""GRPO / reinforcement fine-tuning (RFT) against a grader.

Each step reads as its phases: 1. rollout (G samples per prompt) -> 2. score (grader) ->
3. group-relative advantages -> 4. clipped-ratio update with a KL penalty to the frozen reference,
for ``inner_epochs`` passes -> 5. log, evaluate, checkpoint.

Maths: advantages A_i = (r_i - mean_group r) / (std_group r + eps) [DeepSeekMath, GRPO];
loss_t = -min(rho_t A, clip(rho_t, 1-eps_low, 1+eps_high) A) + beta * KL_k3(pi || pi_ref)_t with
rho_t = pi(o_t) / pi_old(o_t); aggregated per ``loss_type`` (see ``train/losses.py``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import model_validator
from safetensors.torch import load_file

from reinforge.config import Config
from reinforge.errors import ConfigError
from reinforge.graders import as_grader
from reinforge.graders.registry import GraderSpec
from reinforge.models.vllm_backend import make_backend
from reinforge.tasks import get_task
from reinforge.train import distributed, fsdp
from reinforge.train.agent import AgentSettings, agent_bar, agent_finish, kept_group_advantages
from reinforge.train.batching import load_prompt_rows, steps_for
from reinforge.train.evaluate import evaluate
from reinforge.train.grader_audit import preflight
from reinforge.train.hyperparameters import base_values, map_hyperparameters
from reinforge.train.logprobs import RolloutLogps
from reinforge.train.losses import LossType, aggregate_loss, clipped_policy_loss, kl_k3
from reinforge.train.optim_config import OptimSettings
from reinforge.train.rollout import StepRollouts, grader_guard
from reinforge.train.skeleton import Run
from reinforge.train.warmup import load_model


class LoraSettings(Config):
    r: int = 16  # adapter rank
    alpha: int = 32  # scaling numerator: the update is scaled by alpha / r
    dropout: float = 0.0  # dropout on the adapters' input
    target_modules: list[str] | str = "all-linear"  # "all-linear" or module names to adapt


class GRPOConfig(OptimSettings):
    """Every knob of an RFT run. YAML keys are these field names; OpenAI's names go under ``hyperparameters``."""

    # -- model and data
    model: str = "tiny:addition:1m"  # local HF dir, hub id, or tiny:<task>:<size>
    task: str | None = None  # built-in task: supplies data (when no files) and the grader (when none given)
    train_file: str | None = None  # OpenAI RFT JSONL: {"messages": [...], <reference fields>}
    validation_file: str | None = None  # validation rows, in train_file's format
    validation_split: float | None = None  # hold out this fraction of train_file when no validation_file
    train_examples: int = 2000  # rows drawn from a built-in task
    validation_examples: int = 200  # validation rows drawn from a built-in task
    grader: GraderSpec | None = None  # OpenAI grader JSON (inline or a path); default: the task's grader
    # stop when more than this fraction of a step's grades fail (they score 0), on the first step or on 3 in
    # a row later; null: only when all of them fail; 1: never (docs/metrics.md, "Grader errors")
    max_grader_error_fraction: float | None = None
    output_dir: str = "runs/rft"  # run directory: config.yaml, metrics.jsonl, checkpoints/, final/
    seed: int = 0  # seed of data order, sampling and initialisation
    # -- sampling
    group_size: int = 8  # G: samples per prompt
    prompts_per_step: int = 8  # B: prompts per step, so B*G completions per step
    max_new_tokens: int = 16  # most tokens generated per completion
    temperature: float = 1.0  # sampling temperature of the rollouts
    top_p: float = 1.0  # nucleus sampling: sample from the smallest token set with this probability
    # -- the grader audit before step 1 (train/grader_audit.py; rft --skip-audit: false; `grade --audit`: alone)
    audit: bool = True  # audit the grader first: the starting model's reward spread, hacking probes
    audit_prompts: int = 16  # training prompts audited: the first ones the run trains on
    audit_samples: int = 4  # k: samples per audited prompt, at the run's temperature
    # -- optimisation (steps, epochs, the schedule, weight decay, clipping: OptimSettings)
    learning_rate: float = 1e-5  # AdamW peak learning rate
    schedule_steps: int | None = None  # steps the LR schedule spans; default: steps (PBT/ASHA: the total)
    inner_epochs: int = 1  # passes over each rollout batch (mu in the GRPO paper)
    num_minibatches: int = 1  # optimizer steps per inner epoch
    beta: float = 0.04  # KL coefficient; 0 skips the reference model entirely
    kl_ratio_correction: bool = (
        True  # weight the k3 KL by the ratio: unbiased reverse-KL gradient (DeepSeek-V3.2)
    )
    clip_eps: float = 0.2  # policy ratio clip: [1 - clip_eps, 1 + clip_eps_high]
    clip_eps_high: float | None = None  # DAPO clip-higher; None = clip_eps
    loss_type: LossType = "grpo"  # how token losses are averaged (train/losses.py)
    scale_rewards: bool = True  # divide advantages by the group std (False = Dr. GRPO)
    # -- evaluation and checkpoints
    eval_interval: int = 10  # steps between validations (0: only at the start and the end)
    eval_samples: int = 1  # k samples per validation prompt for pass@k (1: greedy only)
    pass_threshold: float = 1.0  # a sample with reward >= this counts as a pass
    save_interval: int = 50  # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept
    # -- system
    lora: LoraSettings | None = None
    agent: AgentSettings | None = None  # tools, episodes (train/agent.py); rows with `tools` imply it
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bfloat16 on GPU, float32 on CPU
    device: str = "auto"  # auto: cuda when available, else cpu
    logprob_chunk: int = 64  # sequences per LM-head chunk when computing log-probs
    # how the update computes log-probs, all to the same values: "packed" runs each prompt once and each
    # completion's real tokens once, no padding (Llama-family models; others use "grouped"); "grouped"
    # runs each prompt once, then completions padded to the longest, in ``logprob_buckets`` length
    # buckets; "padded" is one plain forward over whole padded rows (the reference). "auto": packed on
    # CPU, grouped on GPU (the one measured there so far; benchmarks/README.md)
    logprob_forward: Literal["auto", "packed", "grouped", "padded"] = "auto"
    logprob_buckets: int = 1  # length buckets of the "grouped" log-prob forward
    # sampling: "hf" (the built-in static-cache decoder), "vllm", or "auto" (vLLM on a GPU when installed)
    generation_backend: Literal["auto", "hf", "vllm"] = "auto"
    # built-in backend off the GPU: run each decode step through torch.compile (static shapes). Costs a
    # compile per batch shape at the start, and keeps finished rows in the batch, so it pays off on small
    # models over a long run only (figures: benchmarks/README.md, "Measurement notes")
    compile_decode: bool = False
    # rows per forward/backward; gradients accumulate to exactly the whole minibatch's (None: no split)
    micro_batch_size: int | None = None
    progress: bool = True  # show a progress bar
    hyperparameters: dict[str, Any] | None = (
        None  # OpenAI names: n_epochs, batch_size, ... (train/hyperparameters.py)
    )

    @model_validator(mode="before")
    @classmethod
    def _map_openai_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("hyperparameters"):
            return data
        data = dict(data)
        hp = dict(data.pop("hyperparameters"))
        try:  # the service's jobs map their hyperparameters with the same function (openai_compat)
            data.update(map_hyperparameters("reinforcement", hp, base_values(cls, "reinforcement", data)))
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return data

    @model_validator(mode="after")
    def _check(self) -> GRPOConfig:
        if self.group_size < 2:
            raise ValueError(f"group_size={self.group_size}: GRPO needs >= 2 samples per prompt to compare")
        if self.inner_epochs < 1 or self.num_minibatches < 1:
            raise ValueError("inner_epochs and num_minibatches must be >= 1")
        if (self.prompts_per_step * self.group_size) % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide prompts_per_step*group_size"
            )
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ValueError(f"micro_batch_size={self.micro_batch_size}: must be >= 1 (or null)")
        if self.schedule_steps is not None and self.schedule_steps < (self.steps or 1):
            raise ValueError(
                f"schedule_steps={self.schedule_steps}: must be >= steps ({self.steps}); a run may stop "
                "before its schedule ends, not run past it (leave it unset to span steps)"
            )
        if self.audit_prompts < 1 or self.audit_samples < 2:
            raise ValueError(
                f"audit_prompts={self.audit_prompts}, audit_samples={self.audit_samples}: the audit needs "
                ">= 1 prompt and >= 2 samples per prompt (or set audit: false)"
            )
        if self.logprob_buckets < 1:
            raise ValueError(f"logprob_buckets={self.logprob_buckets}: must be >= 1")
        if not 0 <= (self.max_grader_error_fraction or 0) <= 1:
            raise ValueError(f"max_grader_error_fraction={self.max_grader_error_fraction}: must be in [0, 1]")
        if not (self.task or self.train_file):
            raise ValueError("give train_file (OpenAI RFT JSONL) or task (a built-in task)")
        return self


# ---------------------------------------------------------------------------------------------- setup


def load_grader(cfg: GRPOConfig, reward_fn=None):
    if reward_fn is not None:
        return as_grader(reward_fn)
    if cfg.grader is not None:
        return as_grader(cfg.grader)
    if cfg.task:
        return get_task(cfg.task).grader
    raise ConfigError("grader: give a grader (OpenAI grader JSON or a path) or a task with a built-in grader")


def build_policy(cfg: GRPOConfig, last: Path | None = None):
    """(policy, reference or None, tokenizer), resumed from checkpoint ``last`` when given: its full
    weights, or with LoRA its adapters onto the base. LoRA: the reference is the base, adapters off."""
    dtype = None if cfg.dtype == "auto" else cfg.dtype
    weights_from = str(last) if last is not None and cfg.lora is None else None
    policy, tok = load_model(weights_from or cfg.model, dtype=dtype, device=cfg.device, trainable=True)
    ref = None
    if cfg.lora is not None:
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict  # peft: LoRA runs only

        lcfg = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )
        policy = get_peft_model(policy, lcfg)
        if last is not None:
            set_peft_model_state_dict(policy, load_file(str(last / "adapter" / "adapter_model.safetensors")))
    elif cfg.beta > 0:
        ref, _ = (
            load_model(cfg.model, dtype=dtype, device=cfg.device)
            if weights_from
            else (copy.deepcopy(policy), tok)
        )
        ref.requires_grad_(False).eval()
    return policy, ref, tok


# ---------------------------------------------------------------------------------------------- update


def grpo_update(policy, ref, optimizer, roll, cfg: GRPOConfig, step_seed: int) -> dict[str, float]:
    """Phases 3-4: advantages, then ``inner_epochs`` x ``num_minibatches`` clipped-ratio steps."""
    device = next(policy.parameters()).device
    ids, attn = roll.input_ids.to(device), roll.attention_mask.to(device)
    cmask, lmask = roll.completion_mask.to(device), roll.token_mask.to(device)  # lmask: what the loss sees
    b_adv = kept_group_advantages(roll.rewards, roll.keep, cfg.scale_rewards).flatten().to(device)  # (N,)
    prompt_of = torch.arange(ids.shape[0], device=device) // cfg.group_size  # row k answers prompt k // G
    # log pi(o_t) of the sampled tokens, for any model and subset of rows
    logps_one = RolloutLogps(
        policy,
        ids,
        attn,
        cmask,
        prompt_of,
        cfg.logprob_forward,
        cfg.temperature,
        cfg.logprob_chunk,
        cfg.logprob_buckets,
    )

    N = ids.shape[0]
    micro = cfg.micro_batch_size or N  # rows per forward; gradients accumulate over a minibatch

    def logps_of(model, rows):  # no-grad forwards, micro-batched to bound memory
        return torch.cat([logps_one(model, r) for r in rows.split(micro)])

    everything = torch.arange(N, device=device)
    with torch.no_grad():
        b_ref = None
        if cfg.beta > 0:
            if ref is not None:
                b_ref = logps_of(ref, everything)
            else:  # LoRA: the reference is the base model, adapters off
                with policy.disable_adapter():
                    b_ref = logps_of(policy, everything)
        # old log-probs are needed only when the batch is reused; with one pass, ratio = 1 by definition
        b_old = logps_of(policy, everything) if cfg.inner_epochs > 1 else None

    mb_size = N // cfg.num_minibatches
    gen = torch.Generator().manual_seed(step_seed)
    stats: dict[str, list[float]] = {"loss": [], "policy": [], "kl": [], "clip": [], "grad_norm": []}
    policy.train()
    for _ in range(cfg.inner_epochs):
        order = torch.randperm(N, generator=gen) if cfg.num_minibatches > 1 else torch.arange(N)
        for mb in range(cfg.num_minibatches):
            idx = order[mb * mb_size : (mb + 1) * mb_size].to(device)
            n_tokens = distributed.mean_across(lmask[idx].sum().clamp(min=1).item())  # dapo: all ranks'
            optimizer.zero_grad(set_to_none=True)
            sums = dict.fromkeys(("loss", "policy", "kl", "clip"), 0.0)
            for rows in idx.split(micro):
                mb_logp = logps_one(policy, rows)
                mb_old = b_old[rows] if b_old is not None else mb_logp.detach()
                mb_mask = lmask[rows]
                pg, clipped = clipped_policy_loss(
                    mb_logp, mb_old, b_adv[rows], cfg.clip_eps, cfg.clip_eps_high
                )
                per_token = pg
                if b_ref is not None:
                    kl = kl_k3(mb_logp, b_ref[rows])
                    # the ratio's value is ~1 but its gradient turns the k3 estimate into the unbiased KL gradient
                    kl_term = kl * torch.exp(mb_logp - mb_old) if cfg.kl_ratio_correction else kl
                    per_token = pg + cfg.beta * kl_term
                    sums["kl"] += (kl * mb_mask).sum().item() / n_tokens
                # this micro-batch's share of the minibatch loss, so the accumulated gradient is the
                # gradient of the loss over the whole minibatch, whatever the micro-batch size
                share = (mb_mask.sum().item() / n_tokens) if cfg.loss_type == "dapo" else len(rows) / len(idx)
                loss = aggregate_loss(per_token, mb_mask, cfg.loss_type, cfg.max_new_tokens) * share
                loss.backward()
                sums["loss"] += loss.item()
                sums["policy"] += (
                    share * aggregate_loss(pg.detach(), mb_mask, cfg.loss_type, cfg.max_new_tokens).item()
                )
                sums["clip"] += (clipped.float() * mb_mask).sum().item() / n_tokens
            distributed.average_gradients(policy.parameters())  # N ranks with B/N rows: one with B
            gn = fsdp.clip_gradients([p for p in policy.parameters() if p.requires_grad], cfg.max_grad_norm)
            optimizer.step()
            for k in ("loss", "policy", "clip"):
                stats[k].append(sums[k])
            if b_ref is not None:
                stats["kl"].append(sums["kl"])
            stats["grad_norm"].append(float(gn))
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return {
        "loss/total": mean(stats["loss"]),
        "loss/policy": mean(stats["policy"]),
        "kl/k3": mean(stats["kl"]),
        "clip/fraction": mean(stats["clip"]),
        "grad/norm": mean(stats["grad_norm"]),
    }


# ---------------------------------------------------------------------------------------------- loop


def train_grpo(
    cfg: GRPOConfig,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    reward_fn: Callable | None = None,
) -> dict[str, Any]:
    """Run (or resume) GRPO to ``cfg.steps`` total steps; returns the summary written to ``summary.json``."""
    with Run(cfg, "grpo", "rft", resume, on_step, should_stop) as run:
        train_rows, val_rows = load_prompt_rows(cfg)
        grader = load_grader(cfg, reward_fn)
        guard = grader_guard(cfg, grader, train_rows, val_rows, reward_fn)  # a template typo stops here
        total = steps_for(cfg.steps, cfg.epochs, len(train_rows), cfg.prompts_per_step)
        torch.manual_seed(cfg.seed)
        policy, ref, tok = build_policy(cfg, run.last)
        optimizer, scheduler = run.optimizer(policy, tok, total, cfg.schedule_steps)
        backend = make_backend(cfg.generation_backend, policy, tok, cfg.compile_decode)
        rollouts = StepRollouts(backend, grader, train_rows, tok, cfg)
        with fsdp.full_weights(policy):  # fsdp: every rank gathers the layers, then decodes alone
            audit = preflight(cfg, run, backend, tok, grader, train_rows)  # the grader audit, before step 1

        def run_eval(step: int) -> dict:
            res = evaluate(
                backend,
                tok,
                grader,
                val_rows,
                cfg.max_new_tokens,
                k=cfg.eval_samples,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                seed=cfg.seed + step,
                pass_threshold=cfg.pass_threshold,
                agent=rollouts.agent,
            )
            return {f"eval/{k}": v for k, v in res.items()}

        def state(step: int) -> dict:  # where the data stands, for a resumed run to check
            return {"data_position": step * cfg.prompts_per_step, "epoch_rows": len(train_rows)}

        for step in run.steps(run_eval if val_rows else None, state):
            t0, cpu0 = time.perf_counter(), time.process_time()
            # 1-2. rollout and score: G samples for each of the step's B prompts
            with fsdp.full_weights(policy):  # fsdp: ranks' decoding lengths may differ
                roll = rollouts(step, n=cfg.group_size)
            # 3-4. advantages and update
            with run.autocast():  # precision: bf16 -> bf16 compute over fp32 master weights
                upd = grpo_update(policy, ref, optimizer, roll, cfg, step_seed=cfg.seed * 7919 + step)
            scheduler.step()
            # 5. log (the skeleton evaluates and checkpoints): every rank's rewards and grades
            roll, dt = distributed.for_logging(roll), time.perf_counter() - t0
            n_tokens = int(roll.completion_mask.sum())
            lengths = roll.completion_mask.sum(-1).float()
            r = roll.rewards
            rec = {
                "step": step,
                "kind": "train",
                "reward/mean": r.mean().item(),
                "reward/std": r.std().item(),
                "reward/group_std_zero": (r.std(dim=1) < 1e-6).float().mean().item(),
                **upd,
                "length/mean": lengths.mean().item(),
                "length/max": lengths.max().item(),
                **guard.fields(roll.grades),
                **roll.agent,
                "lr": scheduler.get_last_lr()[0],
                "perf/step_seconds": dt,
                "perf/gen_seconds": roll.gen_seconds,
                "perf/cpu_seconds": time.process_time() - cpu0,  # this rank's CPU (all its threads)
                "perf/tokens_per_s": n_tokens / dt,
                "perf/completions_per_s": r.numel() / dt,
            }
            bar = {"reward": rec["reward/mean"], "kl": rec["kl/k3"], **agent_bar(roll.agent)}
            run.log(rec, bar={**bar, **guard.bar_fields()})
            guard.check(step, roll.grades)  # a grader failing on the first step (or N in a row) stops here
        pass_k, last_eval = f"eval/pass@{cfg.eval_samples}", (run.records("eval") or [{}])[-1]
        return run.finish(
            {
                "train_examples": len(train_rows),
                "validation_examples": len(val_rows),
                "baseline_val_reward": run.eval_value("eval/reward_mean", first=True),
                "final_val_reward": run.eval_value("eval/reward_mean"),
                "final_train_reward": run.train_mean("reward/mean"),
                **guard.summary(run.records("train")),
                **agent_finish(run.dir, run.records()),  # and agent.png
                **audit,
            },
            tail={f"final_val_pass@{cfg.eval_samples}": last_eval[pass_k]} if pass_k in last_eval else None,
        )
