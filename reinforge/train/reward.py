"""Reward-model training from preferences: Bradley-Terry on pairs (optional margin) or Plackett-Luce on rankings.

Each step: 1. a batch of pairs (or rankings) -> 2. one forward over all their responses -> 3. the
pairwise (or listwise) loss -> 4. update -> 5. log; validation reports held-out pairwise accuracy.
At the end the raw scores of the held-out responses fix the 0..1 calibration (``mu``, ``sigma``;
see ``models/reward_model.py``) and ``final/`` holds a reward model the ``reward_model`` grader loads.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import model_validator

from reinforge.config import Config
from reinforge.data.preferences import PreferencePair, Ranking, to_pairs
from reinforge.errors import ReinforgeError
from reinforge.train.losses import pairwise_accuracy
from reinforge.train.optimizer import adamw


class RMConfig(Config):
    """Every knob of a reward-model run."""

    model: str = "minilm"  # backbone: minilm, a local HF dir (e.g. the SFT model), or tiny:<task>:<size>
    backbone: Literal["auto", "causal_lm", "encoder"] = "auto"  # auto: encoder for BERT-like configs
    train_file: str | None = None  # preference JSONL: pairs, rankings, thumbs
    validation_file: str | None = None  # validation rows, in train_file's format
    validation_split: float = 0.1  # held-out fraction of train_file when no validation_file
    output_dir: str = "runs/rm"  # run directory: config.yaml, metrics.jsonl, checkpoints/, final/
    seed: int = 0  # seed of data order, sampling and initialisation
    loss: Literal["bradley_terry", "plackett_luce"] = "bradley_terry"  # PL uses rankings whole
    use_margin: bool = False  # subtract each pair's "margin" inside the sigmoid (Llama 2)
    max_length: int = 256  # tokens of prompt + response
    freeze_backbone: bool = False  # train the head only (fast with a pretrained encoder on CPU)
    epochs: float = 2.0  # passes over the training data when steps is not set
    steps: int | None = None  # default: epochs over the training data
    batch_size: int = 32  # pairs (or rankings) per step
    learning_rate: float = 5e-5  # AdamW peak learning rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "linear"  # decay after the warm-up
    warmup_steps: int = 0  # steps of linear warm-up from 0
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # clip the gradient norm to this
    eval_interval: int = 50  # steps between validations (0: only at the end)
    save_interval: int = 200  # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 1  # newest checkpoints kept
    device: str = "auto"  # auto: cuda when available, else cpu
    progress: bool = True  # show a progress bar

    @model_validator(mode="after")
    def _check(self) -> RMConfig:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: must be >= 1")
        if self.use_margin and self.loss == "plackett_luce":
            raise ValueError("use_margin applies to the bradley_terry loss only")
        return self


def split_rankings(rows: list[Ranking], fraction: float, seed: int) -> tuple[list[Ranking], list[Ranking]]:
    """Hold out whole prompts, so no held-out prompt was seen in training."""
    prompts = sorted({str(r.prompt) for r in rows})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: max(1, round(len(prompts) * fraction))])
    return [r for r in rows if str(r.prompt) not in held], [r for r in rows if str(r.prompt) in held]


def pair_scores(rm, pairs: list[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) raw scores (B,), one forward over the 2B responses."""
    enc = rm.encode([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    s = rm(**enc)
    return s[: len(pairs)], s[len(pairs) :]


def ranking_scores(rm, rankings: list[Ranking]) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (B, K_max) in ranked order and their mask, one forward over every response."""
    prompts = [r.prompt for r in rankings for _ in r.responses]
    flat = rm(**rm.encode(prompts, [x for r in rankings for x in r.responses]))
    K = max(len(r.responses) for r in rankings)
    scores = torch.zeros(len(rankings), K, device=flat.device)
    mask = torch.zeros(len(rankings), K, dtype=torch.bool, device=flat.device)
    pos = 0
    for i, r in enumerate(rankings):
        scores[i, : len(r.responses)] = flat[pos : pos + len(r.responses)]
        mask[i, : len(r.responses)] = True
        pos += len(r.responses)
    return scores, mask


@torch.no_grad()
def evaluate_rm(rm, pairs: list[PreferencePair], batch_size: int = 64) -> dict[str, float]:
    """Held-out pairwise accuracy and Bradley-Terry loss."""
    from reinforge.train.losses import bradley_terry_loss

    rm.eval()
    cs, rs = [], []
    for i in range(0, len(pairs), batch_size):
        c, r = pair_scores(rm, pairs[i : i + batch_size])
        cs.append(c.float().cpu())
        rs.append(r.float().cpu())
    rm.train()
    c, r = torch.cat(cs), torch.cat(rs)
    return {
        "accuracy": pairwise_accuracy(c, r),
        "loss": bradley_terry_loss(c, r).item(),
        "margin_mean": (c - r).mean().item(),
    }


def train_reward_model(
    cfg: RMConfig,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    train_rows: list[Ranking] | None = None,
    val_rows: list[Ranking] | None = None,
) -> dict[str, Any]:
    """Train (or resume) a reward model; returns the summary. ``train_rows``/``val_rows`` bypass the files."""
    from reinforge.data.preferences import load_preferences
    from reinforge.models.loading import pick_device
    from reinforge.models.reward_model import RewardModel
    from reinforge.train import checkpoint as ck
    from reinforge.train.grpo import batch_indices
    from reinforge.train.losses import bradley_terry_loss, plackett_luce_loss
    from reinforge.train.progress import TrainProgress, print_table
    from reinforge.train.run import MetricsLog, plot_metric, prepare_run_dir, write_summary
    from reinforge.train.schedule import make_scheduler
    from reinforge.train.warmup import resolve_model

    t_start = time.time()
    run_dir = prepare_run_dir(Path(cfg.output_dir), resume, cfg.to_yaml())
    if train_rows is None:
        if not cfg.train_file:
            raise ReinforgeError("rm: give train_file (preference JSONL: pairs, rankings or thumbs)")
        train_rows = load_preferences(cfg.train_file)
        if cfg.validation_file:
            val_rows = load_preferences(cfg.validation_file)
        elif cfg.validation_split:
            train_rows, val_rows = split_rankings(train_rows, cfg.validation_split, cfg.seed)
    val_pairs = to_pairs(val_rows or [])
    units: list = train_rows if cfg.loss == "plackett_luce" else to_pairs(train_rows)  # what one batch row is
    if not units:
        raise ReinforgeError(f"{cfg.train_file or 'rm'}: no training pairs left (after the validation split)")
    total = cfg.steps or max(1, math.ceil(cfg.epochs * len(units) / cfg.batch_size))
    last = ck.latest_checkpoint(run_dir) if resume else None
    t_start -= ck.elapsed_seconds(last)  # a resumed run's summary counts the time before the kill too
    start = ck.load_trainer_state(last)["step"] if last else 0

    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    rm = (
        RewardModel.load(last, device)
        if last
        else RewardModel.from_backbone(
            resolve_model(cfg.model), cfg.backbone, cfg.max_length, device, base=cfg.model
        )
    )
    rm.train()
    if cfg.freeze_backbone:
        rm.backbone.requires_grad_(False)
    params = [p for p in rm.parameters() if p.requires_grad]
    optimizer = adamw(params, cfg.learning_rate, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.warmup_steps, total, cfg.lr_schedule)
    if last is not None:
        ck.load_optimizer_state(
            last, optimizer, scheduler, lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
    log = MetricsLog(run_dir / "metrics.jsonl", resume_step=start if resume else None)

    def run_eval(step: int) -> dict:
        if not val_pairs:
            return {}
        res = evaluate_rm(rm, val_pairs)
        rec = {"step": step, "kind": "eval", **{f"eval/{k}": v for k, v in res.items()}}
        log.log(rec)
        if on_step:
            on_step(rec)
        return rec

    evals = [run_eval(0)] if start == 0 else []
    stopped = False
    with TrainProgress(total, start, "rm", enabled=cfg.progress, started=t_start) as bar:
        for step in range(start + 1, total + 1):
            t0 = time.perf_counter()
            # 1. the batch: epochs are fresh shuffles, so the position is a function of the step
            batch = [units[i] for i in batch_indices(step, cfg.batch_size, len(units), cfg.seed)]
            # 2-3. scores and loss
            if cfg.loss == "plackett_luce":
                scores, mask = ranking_scores(rm, batch)
                loss = plackett_luce_loss(scores, mask)
                acc = pairwise_accuracy(scores[:, 0], scores[:, 1])
            else:
                chosen, rejected = pair_scores(rm, batch)
                margin = (
                    torch.tensor([p.margin for p in batch], device=chosen.device) if cfg.use_margin else 0.0
                )
                loss = bradley_terry_loss(chosen, rejected, margin)
                acc = pairwise_accuracy(chosen, rejected)
            # 4. update
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            rec = {
                "step": step,
                "kind": "train",
                "loss/rm": loss.item(),
                "rm/accuracy": acc,
                "grad/norm": float(gn),
                "lr": scheduler.get_last_lr()[0],
                "perf/step_seconds": time.perf_counter() - t0,
            }
            log.log(rec)
            if on_step:
                on_step(rec)
            bar.update(
                step,
                {
                    "loss": rec["loss/rm"],
                    "val_acc": evals[-1].get("eval/accuracy", float("nan")) if evals else float("nan"),
                },
            )
            # 5. evaluate and checkpoint
            if cfg.eval_interval and step % cfg.eval_interval == 0 and step != total:
                evals.append(run_eval(step))
            stopped = bool(should_stop and should_stop())
            # the last step needs no checkpoint: final/ is written below
            if step != total and ck.checkpoint_due(step, total, stopped, cfg.save_interval):
                state = {"units": len(units)}
                ck.save_and_prune(
                    run_dir, step, rm, None, optimizer, scheduler, state, cfg.keep_checkpoints, t_start
                )
            if stopped:
                break
        final_eval = run_eval(total) if not stopped else {}  # in the bar: its time and val_acc include it
        if final_eval:
            bar.update(total, {"val_acc": final_eval["eval/accuracy"]})
    # calibration from held-out (else training) responses: sigmoid((raw - mu) / sigma)
    calib_rows = val_rows or train_rows
    prompts = [r.prompt for r in calib_rows for _ in r.responses]
    raw = rm.score(prompts, [x for r in calib_rows for x in r.responses])
    rm.mu, rm.sigma = raw.mean().item(), max(raw.std().item() if raw.numel() > 1 else 1.0, 1e-4)
    rm.meta.update(
        {
            "val_accuracy": final_eval.get("eval/accuracy"),
            "train_pairs": len(to_pairs(train_rows)),
            "loss": cfg.loss,
        }
    )
    if not stopped:
        ck.save_final(run_dir, rm, None)
    summary = {
        "algorithm": "reward_model",
        "model": cfg.model,
        "backbone": rm.kind,
        "loss": cfg.loss,
        "status": "stopped" if stopped else "succeeded",
        "steps": max([r["step"] for r in log.records("train")], default=0),
        "total_steps": total,
        "train_pairs": len(to_pairs(train_rows)),
        "validation_pairs": len(val_pairs),
        "val_accuracy": final_eval.get("eval/accuracy"),
        "val_accuracy_before": evals[0].get("eval/accuracy") if evals else None,
        "mu": rm.mu,
        "sigma": rm.sigma,
        "seconds": round(time.time() - t_start, 1),
        "run_dir": str(run_dir),
        "reward_model": str(run_dir / "final"),
    }
    write_summary(run_dir, summary)
    plot_metric(run_dir, log.records(), "rm/accuracy", "eval/accuracy", "accuracy.png", "pairwise accuracy")
    if cfg.progress:
        print_table(f"rm {run_dir}", {k: v for k, v in summary.items() if v is not None and k != "run_dir"})
    rm.eval()
    return summary


def main(config_path, overrides: list[str], resume: bool) -> dict:
    from reinforge.config import load_config

    cfg = load_config(RMConfig, config_path, overrides)
    return train_reward_model(cfg, resume=resume)
