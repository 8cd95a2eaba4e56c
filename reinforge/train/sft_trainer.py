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

import random
import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import model_validator

from reinforge.data.rft import load_rft_rows, split_rows
from reinforge.data.to_sft import read_as_sft
from reinforge.errors import DataError
from reinforge.tasks import get_task, sft_rows
from reinforge.train import distributed
from reinforge.train.batching import batch_indices, steps_for
from reinforge.train.optim_config import OptimSettings
from reinforge.train.sft import pad_batch, sft_loss, tokenize_chat
from reinforge.train.skeleton import Run
from reinforge.train.warmup import load_model


class SFTConfig(OptimSettings):
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
    batch_size: int = 32  # rows per step
    learning_rate: float = 2e-5  # AdamW peak learning rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "cosine"  # decay after the warm-up
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
    task = get_task(cfg.task or "")  # the config requires train_file or task
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


def tokenize_rows(tok, rows: list[dict], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) of each chat row, cut to ``max_length`` tokens."""
    pairs = (tokenize_chat(tok, r["messages"], r.get("tools")) for r in rows)
    return [(ids[:max_length], labels[:max_length]) for ids, labels in pairs]


def step_units(cfg: SFTConfig, tok, train_rows: list[dict]) -> list[tuple[list[int], list[int]]]:
    """What a step's batch is drawn from: the tokenized rows or, with ``packing``, the packed rows; the
    step count is ``steps_for`` over these (the service sizes a job's cadence with this too)."""
    examples = tokenize_rows(tok, train_rows, cfg.max_length)
    return pack_examples(examples, cfg.max_length, cfg.seed) if cfg.packing else examples


@torch.no_grad()
def eval_loss(model, examples, pad_id: int, batch_size: int = 64) -> float:
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
    with Run(cfg, "sft", "sft", resume, on_step, should_stop) as run:
        train_rows, val_rows = load_sft_rows(cfg)
        torch.manual_seed(cfg.seed)
        dtype = None if cfg.dtype == "auto" else cfg.dtype
        model, tok = load_model(str(run.last or cfg.model), dtype=dtype, device=cfg.device, trainable=True)
        pad_id = tok.pad_token_id
        units = step_units(cfg, tok, train_rows)
        val_ex = tokenize_rows(tok, val_rows, cfg.max_length)
        total = steps_for(cfg.steps, cfg.epochs, len(units), cfg.batch_size)
        optimizer, scheduler = run.optimizer(model, tok, total)
        device = next(model.parameters()).device

        def evaluate(step: int) -> dict:
            return {"eval/loss": eval_loss(model, val_ex, pad_id)}

        model.train()
        state = lambda step: {"units": len(units)}  # noqa: E731
        for step in run.steps(evaluate if val_ex else None, state, val=("val", "eval/loss")):
            t0 = time.perf_counter()
            # 1. a batch of (packed) rows
            idx = batch_indices(step, cfg.batch_size, len(units), cfg.seed)
            batch = [units[i] for i in distributed.rows(idx)]  # data parallel: this rank's rows
            ids, mask, lab = pad_batch([b[0] for b in batch], [b[1] for b in batch], pad_id)
            # 2-3. masked cross-entropy (over all ranks' tokens: this rank's share of them), update
            share = distributed.share(int((lab[:, 1:] != -100).sum()))
            with run.autocast():
                loss = sft_loss(model, ids.to(device), mask.to(device), lab.to(device)) * share
            # gradients averaged over the ranks: N ranks with B/N rows make one with B
            gn = distributed.optimizer_step(optimizer, loss, model.parameters(), cfg.max_grad_norm)
            scheduler.step()
            # 4. log
            dt = time.perf_counter() - t0
            rec = {
                "step": step,
                "kind": "train",
                "loss/sft": distributed.mean_across(loss.item()),
                "grad/norm": gn,
                "lr": scheduler.get_last_lr()[0],
                "perf/step_seconds": dt,
                "perf/tokens_per_s": float(mask.sum()) / dt,
            }
            run.log(rec, bar={"loss": rec["loss/sft"]})
        return run.finish(
            {
                "train_examples": len(train_rows),
                "rows_per_epoch": len(units),
                "packing": cfg.packing,
                "baseline_val_loss": run.eval_value("eval/loss", first=True),
                "final_val_loss": run.eval_value("eval/loss"),
                "final_train_loss": run.train_mean("loss/sft"),
            },
            tail={"final_model": str(run.dir / "final")},
            plot=("loss/sft", "eval/loss", "loss.png", "loss"),
        )
