"""Supervised fine-tuning on chat data: loss on assistant tokens only, optional sequence packing.

Rows are ``{"messages": [...]}`` with assistant turns to learn (or a built-in ``task``, whose
reference answers become the assistant turns). Tokenisation and the loss live in ``train/sft.py``;
this file is the run around them: 1. a batch (of packed rows) -> 2. masked cross-entropy ->
3. update -> 4. log, evaluate (held-out loss), checkpoint. Same run directory as every trainer.

Packing concatenates whole examples into rows of up to ``max_length`` tokens (no example is split),
so fewer pad tokens are computed; tokens of one example can attend to the examples before it in the
same row, the usual trade-off of simple packing.
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
from reinforge.errors import DataError, ReinforgeError
from reinforge.train.optimizer import adamw


class SFTConfig(Config):
    """Every knob of an SFT run."""

    model: str = "tiny:sentiment:1m:sft_steps=0"  # local HF dir, hub id, or tiny:<task>:<size>[:sft_steps=0]
    task: str | None = None  # built-in task: its rows with the reference answer as the assistant turn
    train_file: str | None = None  # chat JSONL: {"messages": [..., {"role": "assistant", ...}]}
    validation_file: str | None = None  # validation rows, in train_file's format
    # RFT rows (no assistant turn): append this reference field as the assistant turn, e.g. ``answer``
    assistant_field: str | None = None
    validation_split: float | None = 0.05  # hold out this fraction of train_file when no validation_file
    train_examples: int = 2000  # rows drawn from a built-in task
    output_dir: str = "runs/sft"  # run directory: config.yaml, metrics.jsonl, checkpoints/, final/
    seed: int = 0  # seed of data order, sampling and initialisation
    max_length: int = 512  # tokens per (packed) row; longer examples are cut
    packing: bool = False  # pack several examples into each max_length row
    epochs: float = 1.0  # passes over the training data when steps is not set
    steps: int | None = None  # total steps; default: epochs over the training data
    batch_size: int = 32  # rows per step
    learning_rate: float = 2e-5  # AdamW peak learning rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "cosine"  # decay after the warm-up
    warmup_steps: int = 0  # steps of linear warm-up from 0
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # clip the gradient norm to this
    eval_interval: int = 50  # steps between validations (0: none in between)
    save_interval: int = 200  # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 1  # newest checkpoints kept
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bfloat16 on GPU, float32 on CPU
    device: str = "auto"  # auto: cuda when available, else cpu
    progress: bool = True  # show a progress bar

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if not (self.task or self.train_file):
            raise ValueError("give train_file (chat JSONL with assistant turns) or task (a built-in task)")
        return self


def load_sft_rows(cfg: SFTConfig) -> tuple[list[dict], list[dict]]:
    from reinforge.data.rft import load_rft_rows, split_rows
    from reinforge.data.to_sft import read_as_sft
    from reinforge.tasks import get_task, sft_rows

    if cfg.train_file:
        field = cfg.assistant_field
        load = (lambda path: read_as_sft(path, field)) if field else load_rft_rows
        train = load(cfg.train_file)
        for i, r in enumerate(train):
            if not any(m.get("role") == "assistant" for m in r["messages"]):
                raise DataError(
                    f"{cfg.train_file}: row {i + 1} has no assistant turn to learn from; for RFT rows set "
                    "assistant_field: <reference field> (or run `reinforge data to-sft IN OUT --field answer`)"
                )
        val = load(cfg.validation_file) if cfg.validation_file else []
        if not cfg.validation_file and cfg.validation_split:
            train, val = split_rows(train, cfg.validation_split, cfg.seed)
        return train, val
    task = get_task(cfg.task)
    n_val = round(cfg.train_examples * (cfg.validation_split or 0))
    return (
        sft_rows(task.make_rows(cfg.train_examples, seed=cfg.seed, split="train")),
        sft_rows(task.make_rows(n_val, seed=cfg.seed, split="validation")) if n_val else [],
    )


def pack_examples(examples: list[tuple[list[int], list[int]]], max_length: int, seed: int = 0):
    """Greedy packing of (ids, labels) examples into rows of <= ``max_length`` tokens, in a shuffled order."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    rows: list[tuple[list[int], list[int]]] = []
    ids: list[int] = []
    labels: list[int] = []
    for i in order:
        x, y = examples[i][0][:max_length], examples[i][1][:max_length]
        if ids and len(ids) + len(x) > max_length:
            rows.append((ids, labels))
            ids, labels = [], []
        ids, labels = ids + x, labels + y
    if ids:
        rows.append((ids, labels))
    return rows


@torch.no_grad()
def eval_loss(model, examples, pad_id: int, batch_size: int = 64) -> float:
    from reinforge.train.sft import pad_batch, sft_loss

    model.eval()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        ids, mask, lab = pad_batch([e[0] for e in chunk], [e[1] for e in chunk], pad_id)
        n_tok = int((lab[:, 1:] != -100).sum())
        total += sft_loss(model, ids.to(device), mask.to(device), lab.to(device)).item() * n_tok
        n += n_tok
    model.train()
    return total / max(1, n)


def train_sft(
    cfg: SFTConfig,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run (or resume) SFT; returns the summary written to ``summary.json``."""
    from reinforge.train.warmup import load_model
    from reinforge.train import checkpoint as ck
    from reinforge.train.grpo import batch_indices
    from reinforge.train.progress import TrainProgress, print_table
    from reinforge.train.run import MetricsLog, plot_metric, prepare_run_dir, write_summary
    from reinforge.train.schedule import make_scheduler
    from reinforge.train.sft import pad_batch, sft_loss, tokenize_chat

    t_start = time.time()
    run_dir = prepare_run_dir(Path(cfg.output_dir), resume, cfg.to_yaml())
    train_rows, val_rows = load_sft_rows(cfg)
    last = ck.latest_checkpoint(run_dir) if resume else None
    t_start -= ck.elapsed_seconds(last)  # a resumed run's summary counts the time before the kill too
    start = ck.load_trainer_state(last)["step"] if last else 0
    torch.manual_seed(cfg.seed)
    dtype = None if cfg.dtype == "auto" else cfg.dtype
    model, tok = load_model(str(last) if last else cfg.model, dtype=dtype, device=cfg.device, trainable=True)
    pad_id = tok.pad_token_id
    cut = lambda e: (e[0][: cfg.max_length], e[1][: cfg.max_length])  # noqa: E731
    train_ex = [cut(tokenize_chat(tok, r["messages"])) for r in train_rows]
    val_ex = [cut(tokenize_chat(tok, r["messages"])) for r in val_rows]
    units = pack_examples(train_ex, cfg.max_length, cfg.seed) if cfg.packing else train_ex
    total = cfg.steps or max(1, math.ceil(cfg.epochs * len(units) / cfg.batch_size))
    optimizer = adamw(model.parameters(), cfg.learning_rate, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.warmup_steps, total, cfg.lr_schedule)
    if last is not None:
        ck.load_optimizer_state(
            last, optimizer, scheduler, lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
    log = MetricsLog(run_dir / "metrics.jsonl", resume_step=start if resume else None)
    device = next(model.parameters()).device

    def run_eval(step: int) -> dict:
        if not val_ex:
            return {}
        rec = {"step": step, "kind": "eval", "eval/loss": eval_loss(model, val_ex, pad_id)}
        log.log(rec)
        if on_step:
            on_step(rec)
        return rec

    evals = [run_eval(0)] if start == 0 else []
    stopped = False
    model.train()
    with TrainProgress(total, start, "sft", enabled=cfg.progress, started=t_start) as bar:
        for step in range(start + 1, total + 1):
            t0 = time.perf_counter()
            batch = [units[i] for i in batch_indices(step, cfg.batch_size, len(units), cfg.seed)]
            ids, mask, lab = pad_batch([b[0] for b in batch], [b[1] for b in batch], pad_id)
            loss = sft_loss(model, ids.to(device), mask.to(device), lab.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            dt = time.perf_counter() - t0
            rec = {
                "step": step,
                "kind": "train",
                "loss/sft": loss.item(),
                "grad/norm": float(gn),
                "lr": scheduler.get_last_lr()[0],
                "perf/step_seconds": dt,
                "perf/tokens_per_s": float(mask.sum()) / dt,
            }
            log.log(rec)
            if on_step:
                on_step(rec)
            bar.update(
                step,
                {
                    "loss": rec["loss/sft"],
                    "val": evals[-1].get("eval/loss", float("nan")) if evals else float("nan"),
                },
            )
            if cfg.eval_interval and step % cfg.eval_interval == 0 and step != total:
                evals.append(run_eval(step))
            stopped = bool(should_stop and should_stop())
            if ck.checkpoint_due(step, total, stopped, cfg.save_interval):
                ck.save_and_prune(
                    run_dir,
                    step,
                    model,
                    tok,
                    optimizer,
                    scheduler,
                    {"units": len(units)},
                    cfg.keep_checkpoints,
                    t_start,
                )
            if stopped:
                break
        if not stopped:  # in the bar: its time and val figure include the final evaluation
            evals.append(run_eval(total))
            bar.update(total, {"val": evals[-1].get("eval/loss", float("nan"))})
            ck.save_final(run_dir, model, tok)
    records = log.records()
    ev = [r for r in records if r["kind"] == "eval"]
    tr = [r for r in records if r["kind"] == "train"]
    summary = {
        "algorithm": "sft",
        "model": cfg.model,
        "steps": tr[-1]["step"] if tr else 0,
        "total_steps": total,
        "status": "stopped" if stopped else "succeeded",
        "train_examples": len(train_ex),
        "rows_per_epoch": len(units),
        "packing": cfg.packing,
        "baseline_val_loss": ev[0].get("eval/loss") if ev else None,
        "final_val_loss": ev[-1].get("eval/loss") if ev else None,
        "final_train_loss": sum(r["loss/sft"] for r in tr[-5:]) / max(1, len(tr[-5:])) if tr else None,
        "seconds": round(time.time() - t_start, 1),
        "run_dir": str(run_dir),
        "final_model": str(run_dir / "final"),
    }
    write_summary(run_dir, summary)
    plot_metric(run_dir, records, "loss/sft", "eval/loss", "loss.png", "loss")
    if cfg.progress:
        print_table(
            f"sft {run_dir}", {k: v for k, v in summary.items() if v is not None and k not in ("run_dir",)}
        )
    return summary


def main(config_path, overrides: list[str], resume: bool) -> dict:
    from reinforge.config import load_config

    cfg = load_config(SFTConfig, config_path, overrides)
    if (
        not resume
        and Path(cfg.output_dir, "checkpoints").exists()
        and not Path(cfg.output_dir, "summary.json").exists()
    ):
        raise ReinforgeError(f"{cfg.output_dir}: an unfinished run is there; pass --resume to continue it")
    return train_sft(cfg, resume=resume)
