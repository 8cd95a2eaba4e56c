"""DPO (and IPO) on preference pairs: the offline alternative to reward model + PPO.

Phases: 0. the reference model's sequence log-probs of every chosen and rejected response, computed
once and kept -> per step 1. a batch of pairs -> 2. one policy forward over its 2B sequences ->
3. the loss (``sigmoid``: DPO, Rafailov et al. 2023; ``ipo``: IPO, Azar et al. 2023, on per-token
averages; ``sigmoid_norm``: DPO on per-token averages, a length-normalised form) -> 4. update ->
5. log, evaluate (held-out preference accuracy; with a ``task``, sampled reward and KL), checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import model_validator

from reinforge.config import Config
from reinforge.data.preferences import PreferencePair
from reinforge.errors import ReinforgeError
from reinforge.train.losses import pairwise_accuracy, pairwise_correct
from reinforge.train.optimizer import adamw


class DPOConfig(Config):
    """Every knob of a DPO run."""

    model: str = "tiny:sentiment:1m"  # the SFT policy; also the reference
    train_file: str | None = None  # preference JSONL (pairs, rankings -> all their pairs, thumbs)
    validation_file: str | None = None  # validation rows, in train_file's format
    validation_split: float = 0.1  # hold out this fraction of train_file when no validation_file
    output_dir: str = "runs/dpo"  # run directory: config.yaml, metrics.jsonl, checkpoints/, final/
    seed: int = 0  # seed of data order, sampling and initialisation
    loss: Literal["sigmoid", "ipo", "sigmoid_norm"] = "sigmoid"  # DPO, IPO, or DPO on per-token averages
    beta: float = 0.1  # strength of the implicit KL regularisation (IPO's tau)
    label_smoothing: float = 0.0  # conservative DPO: the probability a label is flipped
    epochs: float = 1.0  # passes over the training data when steps is not set
    steps: int | None = None  # total steps; default: epochs over the training data
    batch_size: int = 16  # pairs per step
    learning_rate: float = 5e-6  # AdamW peak learning rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "linear"  # decay after the warm-up
    warmup_steps: int = 0  # steps of linear warm-up from 0
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # clip the gradient norm to this
    max_prompt_tokens: int = 256  # prompt tokens kept (the start is cut)
    max_response_tokens: int = 256  # response tokens kept (the end is cut)
    # -- evaluation (with a task: sample on its validation prompts, grade, measure KL to the reference)
    task: str | None = None  # built-in task whose validation prompts are sampled and graded
    eval_examples: int = 64  # validation prompts sampled at each evaluation
    eval_samples: int = 4  # samples per validation prompt
    max_new_tokens: int = 32  # most tokens per sampled completion
    eval_interval: int = 50  # steps between validations (0: none in between)
    save_interval: int = 200  # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 1  # newest checkpoints kept
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bfloat16 on GPU, float32 on CPU
    device: str = "auto"  # auto: cuda when available, else cpu
    logprob_chunk: int = 64  # sequences per LM-head chunk when computing log-probs
    progress: bool = True  # show a progress bar

    @model_validator(mode="after")
    def _check(self) -> DPOConfig:
        if self.beta <= 0:
            raise ValueError(f"beta={self.beta}: must be > 0")
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing={self.label_smoothing}: must be in [0, 0.5)")
        return self


def pack_responses(
    tok, prompts: list[list[dict]], responses: list[str], max_prompt: int = 256, max_response: int = 256
):
    """[left-padded prompt | right-padded response + EOS]: (ids, attention_mask) (N, P+T), completion mask (N, T)."""
    from reinforge.models.chat import encode_prompt

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    p_ids = [encode_prompt(tok, p)[-max_prompt:] for p in prompts]
    r_ids = [
        (tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])[:max_response] for r in responses
    ]
    P, T, N = max(map(len, p_ids)), max(map(len, r_ids)), len(prompts)
    ids = torch.full((N, P + T), pad, dtype=torch.long)
    attn = torch.zeros((N, P + T), dtype=torch.long)
    cmask = torch.zeros((N, T), dtype=torch.long)
    for k, (p, r) in enumerate(zip(p_ids, r_ids)):
        ids[k, P - len(p) : P], attn[k, P - len(p) : P] = torch.tensor(p), 1
        ids[k, P : P + len(r)], attn[k, P : P + len(r)], cmask[k, : len(r)] = torch.tensor(r), 1, 1
    return ids, attn, cmask


def sequence_logps(
    model, tok, pairs: list[PreferencePair], cfg: DPOConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs (2B,) of [chosen..., rejected...] and their token counts (2B,)."""
    from reinforge.train.logprobs import per_token_logps

    ids, attn, cmask = pack_responses(
        tok,
        [p.prompt for p in pairs] * 2,
        [p.chosen for p in pairs] + [p.rejected for p in pairs],
        cfg.max_prompt_tokens,
        cfg.max_response_tokens,
    )
    device = next(model.parameters()).device
    ids, attn, cmask = ids.to(device), attn.to(device), cmask.to(device)
    logps = per_token_logps(model, ids, attn, cmask.shape[1], 1.0, cfg.logprob_chunk)  # (2B, T)
    return (logps * cmask).sum(-1), cmask.sum(-1).float()


@torch.no_grad()
def reference_logps(
    ref, tok, pairs: list[PreferencePair], cfg: DPOConfig, batch_size: int = 64
) -> torch.Tensor:
    """Phase 0: (n_pairs, 2) reference log-probs [chosen, rejected], computed once."""
    out = []
    for i in range(0, len(pairs), batch_size):
        lp, _ = sequence_logps(ref, tok, pairs[i : i + batch_size], cfg)
        out.append(torch.stack(lp.chunk(2), -1).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 2)


def preference_loss(cfg: DPOConfig, logps: torch.Tensor, lengths: torch.Tensor, ref: torch.Tensor):
    """(loss, chosen_rewards, rejected_rewards) for policy logps (2B,), lengths (2B,) and ref logps (B, 2)."""
    from reinforge.train.losses import dpo_loss, ipo_loss

    c, r = logps.chunk(2)
    lc, lr = lengths.chunk(2)
    rc, rr = ref[:, 0].to(c.device), ref[:, 1].to(c.device)
    if cfg.loss == "ipo":
        return ipo_loss(c, r, rc, rr, cfg.beta, lc, lr)
    if cfg.loss == "sigmoid_norm":
        return dpo_loss(c / lc, r / lr, rc / lc, rr / lr, cfg.beta, cfg.label_smoothing)
    return dpo_loss(c, r, rc, rr, cfg.beta, cfg.label_smoothing)


@torch.no_grad()
def evaluate_pairs(
    policy, tok, pairs: list[PreferencePair], ref: torch.Tensor, cfg: DPOConfig
) -> dict[str, float]:
    losses, accs, margins = [], [], []
    for i in range(0, len(pairs), 64):
        lp, ln = sequence_logps(policy, tok, pairs[i : i + 64], cfg)
        loss, cr, rr = preference_loss(cfg, lp, ln, ref[i : i + 64])
        losses.append(loss.item() * len(cr))
        accs += pairwise_correct(cr, rr).tolist()
        margins += (cr - rr).tolist()
    n = max(1, len(accs))
    return {"loss": sum(losses) / n, "accuracy": sum(accs) / n, "margin_mean": sum(margins) / n}


def train_dpo(
    cfg: DPOConfig,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    train_pairs: list[PreferencePair] | None = None,
    val_pairs: list[PreferencePair] | None = None,
) -> dict[str, Any]:
    """Run (or resume) DPO; returns the summary. ``train_pairs``/``val_pairs`` bypass the files."""
    from reinforge.data.preferences import load_preferences, to_pairs
    from reinforge.train import checkpoint as ck
    from reinforge.train.grpo import batch_indices
    from reinforge.train.progress import TrainProgress, print_table
    from reinforge.train.reward import split_rankings
    from reinforge.train.run import MetricsLog, plot_metric, prepare_run_dir, write_summary
    from reinforge.train.schedule import make_scheduler
    from reinforge.train.warmup import load_model

    t_start = time.time()
    run_dir = prepare_run_dir(Path(cfg.output_dir), resume, cfg.to_yaml())
    if train_pairs is None:
        if not cfg.train_file:
            raise ReinforgeError("dpo: give train_file (preference JSONL: pairs, rankings or thumbs)")
        rows = load_preferences(cfg.train_file)
        val_rows = load_preferences(cfg.validation_file) if cfg.validation_file else []
        if not cfg.validation_file and cfg.validation_split:
            rows, val_rows = split_rankings(rows, cfg.validation_split, cfg.seed)
        train_pairs, val_pairs = to_pairs(rows), to_pairs(val_rows)
    val_pairs = val_pairs or []
    total = cfg.steps or max(1, math.ceil(cfg.epochs * len(train_pairs) / cfg.batch_size))
    last = ck.latest_checkpoint(run_dir) if resume else None
    t_start -= ck.elapsed_seconds(last)  # a resumed run's summary counts the time before the kill too
    start = ck.load_trainer_state(last)["step"] if last else 0

    torch.manual_seed(cfg.seed)
    dtype = None if cfg.dtype == "auto" else cfg.dtype
    policy, tok = load_model(str(last) if last else cfg.model, dtype=dtype, device=cfg.device, trainable=True)
    ref_model, _ = load_model(cfg.model, dtype=dtype, device=cfg.device)
    # 0. reference log-probs, once
    b_ref, v_ref = (
        reference_logps(ref_model, tok, train_pairs, cfg),
        reference_logps(ref_model, tok, val_pairs, cfg),
    )
    eval_rows, grader = [], None
    if cfg.task:
        from reinforge.tasks import get_task

        task = get_task(cfg.task)
        eval_rows, grader = task.make_rows(cfg.eval_examples, seed=cfg.seed, split="validation"), task.grader
    else:
        del ref_model  # only the sampled evaluation needs the reference weights
    optimizer = adamw(policy.parameters(), cfg.learning_rate, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.warmup_steps, total, cfg.lr_schedule)
    if last is not None:
        ck.load_optimizer_state(
            last, optimizer, scheduler, lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
    log = MetricsLog(run_dir / "metrics.jsonl", resume_step=start if resume else None)

    def run_eval(step: int) -> dict:
        rec: dict[str, Any] = {"step": step, "kind": "eval"}
        if val_pairs:
            rec.update(
                {f"eval/{k}": v for k, v in evaluate_pairs(policy, tok, val_pairs, v_ref, cfg).items()}
            )
        if eval_rows:
            from reinforge.train.evaluate import evaluate_policy

            res = evaluate_policy(
                policy,
                ref_model,
                tok,
                eval_rows,
                grader,
                None,
                cfg.eval_samples,
                cfg.max_new_tokens,
                seed=cfg.seed + 17,
                chunk=cfg.logprob_chunk,
            )
            rec.update({"eval/reward_mean": res["reward_mean"], "eval/kl": res["kl"]})
        if len(rec) > 2:
            log.log(rec)
            if on_step:
                on_step(rec)
        return rec

    evals = [run_eval(0)] if start == 0 else []
    stopped = False
    policy.train()
    with TrainProgress(total, start, f"dpo ({cfg.loss})", enabled=cfg.progress, started=t_start) as bar:
        for step in range(start + 1, total + 1):
            t0 = time.perf_counter()
            # 1-3. batch, forward, loss
            idx = batch_indices(step, cfg.batch_size, len(train_pairs), cfg.seed)
            logps, lengths = sequence_logps(policy, tok, [train_pairs[i] for i in idx], cfg)
            loss, cr, rr = preference_loss(cfg, logps, lengths, b_ref[idx])
            # 4. update
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            rec = {
                "step": step,
                "kind": "train",
                "loss/dpo": loss.item(),
                "rewards/chosen": cr.mean().item(),
                "rewards/rejected": rr.mean().item(),
                "rewards/accuracy": pairwise_accuracy(cr, rr),
                "rewards/margin": (cr - rr).mean().item(),
                "grad/norm": float(gn),
                "lr": scheduler.get_last_lr()[0],
                "perf/step_seconds": time.perf_counter() - t0,
            }
            log.log(rec)
            if on_step:
                on_step(rec)
            bar.update(step, {"loss": rec["loss/dpo"], "acc": rec["rewards/accuracy"]})
            # 5. evaluate and checkpoint
            if cfg.eval_interval and step % cfg.eval_interval == 0 and step != total:
                evals.append(run_eval(step))
            stopped = bool(should_stop and should_stop())
            if ck.checkpoint_due(step, total, stopped, cfg.save_interval):
                ck.save_and_prune(
                    run_dir,
                    step,
                    policy,
                    tok,
                    optimizer,
                    scheduler,
                    {"pairs": len(train_pairs)},
                    cfg.keep_checkpoints,
                    t_start,
                )
            if stopped:
                break
        if not stopped:  # in the bar: its time and val_acc figure include the final evaluation
            evals.append(run_eval(total))
            bar.update(total, {"val_acc": evals[-1].get("eval/accuracy", float("nan"))})
            ck.save_final(run_dir, policy, tok)
    records = log.records()
    ev = [r for r in records if r["kind"] == "eval"]
    tr = [r for r in records if r["kind"] == "train"]
    summary = {
        "algorithm": "dpo",
        "loss": cfg.loss,
        "model": cfg.model,
        "steps": tr[-1]["step"] if tr else 0,
        "total_steps": total,
        "status": "stopped" if stopped else "succeeded",
        "train_pairs": len(train_pairs),
        "validation_pairs": len(val_pairs),
        "val_accuracy_before": ev[0].get("eval/accuracy") if ev else None,
        "val_accuracy": ev[-1].get("eval/accuracy") if ev else None,
        "baseline_val_reward": ev[0].get("eval/reward_mean") if ev else None,
        "final_val_reward": ev[-1].get("eval/reward_mean") if ev else None,
        "final_kl": ev[-1].get("eval/kl") if ev else None,
        "seconds": round(time.time() - t_start, 1),
        "run_dir": str(run_dir),
    }
    write_summary(run_dir, summary)
    plot_metric(run_dir, records, "rewards/accuracy", "eval/accuracy", "accuracy.png", "preference accuracy")
    if cfg.progress:
        print_table(f"dpo {run_dir}", {k: v for k, v in summary.items() if v is not None and k != "run_dir"})
    return summary


def main(config_path, overrides: list[str], resume: bool) -> dict:
    from reinforge.config import load_config

    cfg = load_config(DPOConfig, config_path, overrides)
    return train_dpo(cfg, resume=resume)
