"""Checkpoints that are never half-written: save into ``step-N.tmp/``, fsync, then rename to ``step-N/``.

A checkpoint holds the model (HF format, loadable by plain ``transformers``), the tokenizer, the
optimizer and LR-scheduler state, RNG states and ``trainer_state.json`` (step, data position, and
anything the trainer adds).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reinforge.errors import StorageError
from reinforge.train.fsdp import load_optimizer


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_pretrained_model(model, tokenizer, path: Path, weights: dict | None = None) -> None:
    """Save a plain HF model: LoRA adapters are merged into a copy so ``final/`` needs no peft.
    ``weights``: its whole state dict where the model holds only shards (``train/fsdp.py``)."""
    if weights is not None:
        model.save_pretrained(path, state_dict=weights)
    elif hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        import copy

        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(path)
    else:
        model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)


def write_dir_atomically(final: Path, write: Callable[[Path], None], what: str, intact: str) -> Path:
    """Run ``write(tmp)`` into ``<final>.tmp/``, then rename it to ``final``: a kill mid-write never
    leaves a half-written directory where a finished one is expected. A full disk (an ``OSError``, or
    torch's C++ writer failing with no space left) becomes one clear error, the ``.tmp`` directory is
    removed, and the directory already at ``final`` stays as it was."""
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        write(tmp)
    except (OSError, RuntimeError) as e:
        full = isinstance(e, RuntimeError) and disk_full(tmp)  # torch.save says only "iostream error"
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, RuntimeError) and not full:
            raise
        reason = "No space left on device" if full else (getattr(e, "strerror", None) or str(e))
        raise StorageError(f"{final}: could not write {what} ({reason}); {intact}") from None
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def disk_full(path: Path, slack: int = 64 * 1024) -> bool:
    """Whether the file system holding ``path`` has (almost) no room left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < slack


def save_final(run_dir: Path, model, tokenizer, weights: dict | None = None) -> Path:
    """Write ``final/``: the trained model, loadable with plain ``transformers``."""
    return write_dir_atomically(
        run_dir / "final",
        lambda tmp: save_pretrained_model(model, tokenizer, tmp, weights),
        "the final model",
        "the run's checkpoints are intact",
    )


def save_checkpoint(
    run_dir: Path,
    step: int,
    model,
    tokenizer,
    optimizer,
    scheduler,
    state: dict,
    weights: dict | None = None,
    optimizer_state: dict | None = None,
) -> Path:
    """``weights``/``optimizer_state``: the whole states where the model and optimizer hold shards."""

    def write(tmp: Path) -> None:
        if hasattr(model, "peft_config"):
            model.save_pretrained(tmp / "adapter")  # trainable adapter weights, for exact resume
        save_pretrained_model(model, tokenizer, tmp, weights)
        torch.save(
            {
                "optimizer": optimizer_state if optimizer_state is not None else optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler else None,
                "rng": rng_state(),
            },
            tmp / "optimizer.pt",
        )
        (tmp / "trainer_state.json").write_text(json.dumps({**state, "step": step}, indent=1))

    final = Path(run_dir) / "checkpoints" / f"step-{step}"
    return write_dir_atomically(final, write, "checkpoint", "earlier checkpoints are intact")


def checkpoint_due(step: int, total: int, stopped: bool, interval: int | None) -> bool:
    """Every ``interval`` steps, at the last step, and whenever a run is asked to stop."""
    return step == total or stopped or bool(interval and step % interval == 0)


def save_and_prune(
    run_dir: Path,
    step: int,
    model,
    tokenizer,
    optimizer,
    scheduler,
    state: dict,
    keep: int,
    started: float,
    weights: dict | None = None,
    optimizer_state: dict | None = None,
) -> Path:
    """:func:`save_checkpoint` with the training time since ``started`` (a ``time.time()``, moved back by
    :func:`elapsed_seconds` on resume), then drop all but the newest ``keep`` checkpoints."""
    state = {**state, "seconds": time.time() - started}
    path = save_checkpoint(
        run_dir, step, model, tokenizer, optimizer, scheduler, state, weights, optimizer_state
    )
    prune_checkpoints(run_dir, keep)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.exists():
        return []
    done = [
        p
        for p in root.glob("step-*")
        if p.is_dir() and not p.name.endswith(".tmp") and (p / "trainer_state.json").exists()
    ]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    if keep <= 0:
        return
    for p in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in (Path(run_dir) / "checkpoints").glob("*.tmp"):
        shutil.rmtree(p, ignore_errors=True)


def load_trainer_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / "trainer_state.json").read_text())


def elapsed_seconds(ckpt: Path | None) -> float:
    """Training time recorded up to ``ckpt`` (0 without one, or for checkpoints that predate the field)."""
    return float(load_trainer_state(ckpt).get("seconds", 0.0)) if ckpt is not None else 0.0


def load_optimizer_state(
    ckpt: Path, optimizer, scheduler, *, lr: float, weight_decay: float, model=None
) -> None:
    """Restore the optimizer's moments, the scheduler's position and the RNG states saved in ``ckpt``,
    then apply the current config's hyperparameters to every param group: base rate ``lr`` (the rate
    of the next step is ``lr`` times the schedule at the restored step) and ``weight_decay``.

    The saved param groups carry the old run's ``lr`` and ``weight_decay``, and the scheduler's state
    its old base rates: without this, ``--resume --set learning_rate=X`` (or a PBT exploit) keeps the
    old rate and the old weight decay."""
    blob = torch.load(Path(ckpt) / "optimizer.pt", weights_only=False)
    if model is not None:  # sharded or saved by name: train/fsdp.py maps it onto this optimizer
        load_optimizer(model, optimizer, blob["optimizer"])
    else:
        optimizer.load_state_dict(blob["optimizer"])
    if scheduler is not None and blob.get("scheduler") is not None:
        scheduler.load_state_dict(blob["scheduler"])  # its lambdas stay the current config's
    for group in optimizer.param_groups:
        group["initial_lr"], group["lr"], group["weight_decay"] = lr, lr, weight_decay
    if scheduler is not None:
        scheduler.base_lrs = [lr for _ in optimizer.param_groups]
        rates = [lr * f(scheduler.last_epoch) for f in scheduler.lr_lambdas]
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = rate
        scheduler._last_lr = rates  # what get_last_lr() reports until the next step
    set_rng_state(blob["rng"])
