"""DPO (and IPO) on preference pairs: the offline alternative to reward model + PPO.

Phases: 0. the reference model's sequence log-probs of every chosen and rejected response, computed
once and kept -> per step 1. a batch of pairs -> 2. one policy forward over its 2B sequences ->
3. the loss (``sigmoid``: DPO, Rafailov et al. 2023; ``ipo``: IPO, Azar et al. 2023, on per-token
averages; ``sigmoid_norm``: DPO on per-token averages, a length-normalised form) -> 4. update ->
5. log, evaluate (held-out preference accuracy; with a ``task``, sampled reward and KL), checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import model_validator

from reinforge.data.preferences import PreferencePair, load_preferences, to_pairs
from reinforge.errors import ReinforgeError
from reinforge.models.chat import encode_prompt
from reinforge.tasks import get_task
from reinforge.train import distributed
from reinforge.train.batching import batch_indices, split_rankings, steps_for
from reinforge.train.evaluate import evaluate_policy
from reinforge.train.logprobs import per_token_logps
from reinforge.train.losses import dpo_loss, ipo_loss, pairwise_accuracy, pairwise_correct
from reinforge.train.optim_config import OptimSettings
from reinforge.train.skeleton import Run
from reinforge.train.warmup import load_model


class DPOConfig(OptimSettings):
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
    batch_size: int = 16  # pairs per step
    learning_rate: float = 5e-6  # AdamW peak learning rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "linear"  # decay after the warm-up
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
    with Run(cfg, "dpo", "dpo", resume, on_step, should_stop) as run:
        if train_pairs is None:
            train_pairs, val_pairs = load_pairs(cfg)
        val_pairs = val_pairs or []
        total = steps_for(cfg.steps, cfg.epochs, len(train_pairs), cfg.batch_size)
        torch.manual_seed(cfg.seed)
        dtype = None if cfg.dtype == "auto" else cfg.dtype
        policy, tok = load_model(str(run.last or cfg.model), dtype=dtype, device=cfg.device, trainable=True)
        ref_model, _ = load_model(cfg.model, dtype=dtype, device=cfg.device)
        # 0. reference log-probs, once (data parallel: each rank computes a block of them)
        b_ref = distributed.split_work(lambda ps: reference_logps(ref_model, tok, ps, cfg), train_pairs)
        v_ref = distributed.split_work(lambda ps: reference_logps(ref_model, tok, ps, cfg), val_pairs)
        eval_rows, grader = [], None
        if cfg.task:
            task = get_task(cfg.task)
            eval_rows, grader = (
                task.make_rows(cfg.eval_examples, seed=cfg.seed, split="validation"),
                task.grader,
            )
        else:
            del ref_model  # only the sampled evaluation needs the reference weights
        optimizer, scheduler = run.optimizer(policy, tok, total)
        policy.train()

        def run_eval(step: int) -> dict:
            rec: dict[str, Any] = {}
            if val_pairs:
                rec.update(
                    {f"eval/{k}": v for k, v in evaluate_pairs(policy, tok, val_pairs, v_ref, cfg).items()}
                )
            if eval_rows:
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
                policy.train()  # sampling put the policy in eval mode
            return rec

        steps = run.steps(
            run_eval,
            lambda step: {"pairs": len(train_pairs)},
            val=("val_acc", "eval/accuracy"),
            description=f"dpo ({cfg.loss})",
        )
        for step in steps:
            t0 = time.perf_counter()
            # 1-3. batch (data parallel: this rank's block of it, train/distributed.py), forward, loss
            idx = distributed.rows(batch_indices(step, cfg.batch_size, len(train_pairs), cfg.seed))
            logps, lengths = sequence_logps(policy, tok, [train_pairs[i] for i in idx], cfg)
            loss, cr, rr = preference_loss(cfg, logps, lengths, b_ref[idx])
            # 4. update (gradients averaged over the ranks: N ranks with B/N pairs make one with B)
            gn = distributed.optimizer_step(optimizer, loss, policy.parameters(), cfg.max_grad_norm)
            scheduler.step()
            # 5. log (the skeleton evaluates and checkpoints): the means over every rank's pairs
            figures = {
                "loss/dpo": loss.item(),
                "rewards/chosen": cr.mean().item(),
                "rewards/rejected": rr.mean().item(),
                "rewards/accuracy": pairwise_accuracy(cr, rr),
                "rewards/margin": (cr - rr).mean().item(),
            }
            rec = {
                "step": step,
                "kind": "train",
                **distributed.mean_fields(figures),
                "grad/norm": gn,
                "lr": scheduler.get_last_lr()[0],
                "perf/step_seconds": time.perf_counter() - t0,
            }
            run.log(rec, bar={"loss": rec["loss/dpo"], "acc": rec["rewards/accuracy"]})
        return run.finish(
            {
                "loss": cfg.loss,
                "train_pairs": len(train_pairs),
                "validation_pairs": len(val_pairs),
                "val_accuracy_before": run.eval_value("eval/accuracy", first=True),
                "val_accuracy": run.eval_value("eval/accuracy"),
                "baseline_val_reward": run.eval_value("eval/reward_mean", first=True),
                "final_val_reward": run.eval_value("eval/reward_mean"),
                "final_kl": run.eval_value("eval/kl"),
            },
            plot=("rewards/accuracy", "eval/accuracy", "accuracy.png", "preference accuracy"),
        )


def load_pairs(cfg: DPOConfig) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, validation) pairs from ``train_file`` (rankings give all their pairs) and the split."""
    if not cfg.train_file:
        raise ReinforgeError("dpo: give train_file (preference JSONL: pairs, rankings or thumbs)")
    rows = load_preferences(cfg.train_file)
    val_rows = load_preferences(cfg.validation_file) if cfg.validation_file else []
    if not cfg.validation_file and cfg.validation_split:
        rows, val_rows = split_rankings(rows, cfg.validation_split, cfg.seed)
    return to_pairs(rows), to_pairs(val_rows)
