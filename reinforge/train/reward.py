"""Reward-model training from preferences: Bradley-Terry on pairs (optional margin) or Plackett-Luce on rankings.

Each step: 1. a batch of pairs (or rankings) -> 2. one forward over all their responses -> 3. the
pairwise (or listwise) loss -> 4. update -> 5. log; validation reports held-out pairwise accuracy.
At the end the raw scores of the held-out responses fix the 0..1 calibration (``mu``, ``sigma``;
see ``models/reward_model.py``) and ``final/`` holds a reward model the ``reward_model`` grader loads: a
Hugging Face sequence classifier with one label (as TRL's ``RewardTrainer`` saves) plus ``reward_model.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import model_validator

from reinforge.data.preferences import PreferencePair, Ranking, load_preferences, to_pairs
from reinforge.errors import ReinforgeError
from reinforge.models.loading import pick_device
from reinforge.models.reward_model import RewardModel
from reinforge.train import distributed
from reinforge.train.batching import batch_indices, split_rankings, steps_for
from reinforge.train.losses import bradley_terry_loss, pairwise_accuracy, plackett_luce_loss
from reinforge.train.optim_config import OptimSettings
from reinforge.train.skeleton import Run
from reinforge.train.warmup import resolve_model


class RMConfig(OptimSettings):
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
    batch_size: int = 32  # pairs (or rankings) per step
    learning_rate: float = 5e-5  # AdamW peak learning rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "linear"  # decay after the warm-up
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
    with Run(cfg, "reward_model", "rm", resume, on_step, should_stop) as run:
        if train_rows is None:
            train_rows, val_rows = load_rankings(cfg)
        val_pairs = to_pairs(val_rows or [])
        units: list = (
            train_rows if cfg.loss == "plackett_luce" else to_pairs(train_rows)
        )  # one batch row each
        if not units:
            raise ReinforgeError(
                f"{cfg.train_file or 'rm'}: no training pairs left (after the validation split)"
            )
        total = steps_for(cfg.steps, cfg.epochs, len(units), cfg.batch_size)
        torch.manual_seed(cfg.seed)
        device = pick_device(cfg.device)
        rm = (
            RewardModel.load(run.last, device)
            if run.last
            else RewardModel.from_backbone(
                resolve_model(cfg.model), cfg.backbone, cfg.max_length, device, base=cfg.model
            )
        )
        rm.train()
        if cfg.freeze_backbone:
            rm.backbone.requires_grad_(False)
        params = [p for p in rm.parameters() if p.requires_grad]
        optimizer, scheduler = run.optimizer(rm, None, total)

        def run_eval(step: int) -> dict:
            return {f"eval/{k}": v for k, v in evaluate_rm(rm, val_pairs).items()}

        # the last step needs no checkpoint: final/ is written after the calibration below
        steps = run.steps(
            run_eval if val_pairs else None,
            lambda step: {"units": len(units)},
            val=("val_acc", "eval/accuracy"),
            save_last=False,
        )
        for step in steps:
            t0 = time.perf_counter()
            # 1. the batch: epochs are fresh shuffles, so the position is a function of the step;
            # data parallel: this rank's block of it (train/distributed.py)
            idx = distributed.rows(batch_indices(step, cfg.batch_size, len(units), cfg.seed))
            batch = [units[i] for i in idx]
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
            # 4. update (gradients averaged over the ranks: N ranks with B/N pairs make one with B)
            gn = distributed.optimizer_step(optimizer, loss, params, cfg.max_grad_norm)
            scheduler.step()
            # 5. log (the skeleton evaluates and checkpoints): the means over every rank's pairs
            rec = {
                "step": step,
                "kind": "train",
                **distributed.mean_fields({"loss/rm": loss.item(), "rm/accuracy": acc}),
                "grad/norm": gn,
                "lr": scheduler.get_last_lr()[0],
                "perf/step_seconds": time.perf_counter() - t0,
            }
            run.log(rec, bar={"loss": rec["loss/rm"]})
        # 6. calibration from held-out (else training) responses: sigmoid((raw - mu) / sigma)
        calib_rows = val_rows or train_rows
        prompts = [r.prompt for r in calib_rows for _ in r.responses]
        raw = rm.score(prompts, [x for r in calib_rows for x in r.responses])
        rm.mu, rm.sigma = raw.mean().item(), max(raw.std().item() if raw.numel() > 1 else 1.0, 1e-4)
        val_accuracy = run.final_eval.get("eval/accuracy")
        rm.meta.update(
            {"val_accuracy": val_accuracy, "train_pairs": len(to_pairs(train_rows)), "loss": cfg.loss}
        )
        if not run.stopped:
            run.save_final()
        summary = run.finish(
            {
                "backbone": rm.kind,
                "loss": cfg.loss,
                "train_pairs": len(to_pairs(train_rows)),
                "validation_pairs": len(val_pairs),
                "val_accuracy": val_accuracy,
                "val_accuracy_before": run.evals[0].get("eval/accuracy") if run.evals else None,
                "mu": rm.mu,
                "sigma": rm.sigma,
            },
            tail={"reward_model": str(run.dir / "final")},
            plot=("rm/accuracy", "eval/accuracy", "accuracy.png", "pairwise accuracy"),
        )
    rm.eval()
    return summary


def load_rankings(cfg: RMConfig) -> tuple[list[Ranking], list[Ranking] | None]:
    """(train, validation) preference rows from ``train_file`` and ``validation_file`` or the split."""
    if not cfg.train_file:
        raise ReinforgeError("rm: give train_file (preference JSONL: pairs, rankings or thumbs)")
    train_rows, val_rows = load_preferences(cfg.train_file), None
    if cfg.validation_file:
        val_rows = load_preferences(cfg.validation_file)
    elif cfg.validation_split:
        train_rows, val_rows = split_rankings(train_rows, cfg.validation_split, cfg.seed)
    return train_rows, val_rows
