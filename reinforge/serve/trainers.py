"""From an OpenAI job object to a reinforge trainer run: config building and dispatch by ``method.type``.

``method = {"type": "reinforcement", "reinforcement": {"grader": ..., "hyperparameters": {...}}}`` maps to
:class:`~reinforge.train.grpo.GRPOConfig`; ``supervised`` and ``dpo`` to the SFT and DPO trainers. A
``reinforge`` object inside ``method`` (an extension) sets any trainer field directly, e.g.
``{"max_new_tokens": 8}``. Every trainer shares one call shape:
``train(cfg, resume, on_step, should_stop) -> summary``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reinforge.errors import ConfigError, ReinforgeError

METHODS = ("reinforcement", "supervised", "dpo")


def hyperparameters_of(method: dict) -> dict:
    """OpenAI hyperparameters with "auto"/None dropped (reasoning_effort has no meaning here)."""
    hp = (method.get(method["type"]) or {}).get("hyperparameters") or {}
    return {k: v for k, v in hp.items() if v not in (None, "auto") and k != "reasoning_effort"}


def n_steps(n_rows: int, batch: int, epochs: float) -> int:
    return max(1, math.ceil(epochs * n_rows / batch))


def build_config(
    method: dict,
    model: str,
    train_file: str,
    validation_file: str | None,
    output_dir: str,
    seed: int,
    n_train_rows: int,
):
    """The trainer config for one job; raises ConfigError with the offending key named."""
    from pydantic import ValidationError

    kind = method.get("type")
    if kind not in METHODS:
        raise ConfigError(f"method.type {kind!r}: must be one of {list(METHODS)}")
    extra = dict(method.get("reinforge") or {})
    hp = hyperparameters_of(method)
    common = {
        "model": model,
        "train_file": train_file,
        "validation_file": validation_file,
        "output_dir": output_dir,
        "seed": seed,
        "progress": False,
    }
    try:
        if kind == "reinforcement":
            from reinforge.train.grpo import GRPOConfig

            grader = (method.get("reinforcement") or {}).get("grader")
            if not grader:
                raise ConfigError("method.reinforcement.grader: required (OpenAI grader JSON)")
            cfg = GRPOConfig(
                **common,
                grader=grader,
                hyperparameters=hp or None,
                **{"max_new_tokens": 16, "keep_checkpoints": 3, **extra},
            )
            total = cfg.steps or n_steps(n_train_rows, cfg.prompts_per_step, cfg.epochs)
            if "save_interval" not in extra:  # about three checkpoints per job, like OpenAI's per-epoch ones
                cfg.save_interval = max(1, math.ceil(total / 3))
            return cfg
        if kind == "supervised":
            return SupervisedConfig(**common, **_sft_hp(hp), **extra)
        trainer = _optional("reinforge.train.dpo", "DPOConfig")
        if trainer is None:
            raise ConfigError("method.type 'dpo': the DPO trainer is not available in this build")
        return trainer(**common, hyperparameters=hp or None, **extra)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "method"
        raise ConfigError(f"method.{where}: {err['msg']}") from None


def _optional(module: str, name: str):
    try:
        mod = __import__(module, fromlist=[name])
    except ImportError:
        return None
    return getattr(mod, name, None)


def run_training(cfg, resume: bool, on_step: Callable[[dict], None], should_stop: Callable[[], bool]) -> dict:
    """Dispatch to the trainer that owns ``cfg``'s type."""
    from reinforge.train.grpo import GRPOConfig, train_grpo

    if isinstance(cfg, GRPOConfig):
        return train_grpo(cfg, resume=resume, on_step=on_step, should_stop=should_stop)
    if isinstance(cfg, SupervisedConfig):
        return train_supervised(cfg, resume=resume, on_step=on_step, should_stop=should_stop)
    from reinforge.train.dpo import train_dpo

    return train_dpo(cfg, resume=resume, on_step=on_step, should_stop=should_stop)


# ---------------------------------------------------------------------------------------------- supervised
# A compact SFT loop with checkpoints and resume, used by the service until the full SFT trainer
# (``reinforge.train.sft_trainer``) lands; it reuses the SFT pieces of ``reinforge.train.sft``.

from reinforge.config import Config  # noqa: E402


class SupervisedConfig(Config):
    model: str = "tiny:addition:1m"
    train_file: str
    validation_file: str | None = None
    output_dir: str = "runs/sft"
    seed: int = 0
    epochs: float = 3.0  # n_epochs
    batch_size: int = 8
    learning_rate: float = 1e-4  # x learning_rate_multiplier
    save_interval: int | None = None  # default: about three checkpoints
    keep_checkpoints: int = 3
    progress: bool = False


def _sft_hp(hp: dict) -> dict:
    out: dict[str, Any] = {}
    for name, value in hp.items():
        if name == "n_epochs":
            out["epochs"] = value
        elif name == "batch_size":
            out["batch_size"] = value
        elif name == "learning_rate_multiplier":
            out["learning_rate"] = 1e-4 * float(value)
        else:
            raise ConfigError(
                f"method.supervised.hyperparameters.{name}: unknown; known: batch_size, "
                "learning_rate_multiplier, n_epochs"
            )
    return out


def _chat_rows(path: str) -> list[dict]:
    from reinforge.data.jsonl import iter_jsonl
    from reinforge.data.rft import check_messages

    rows = []
    for lineno, row in iter_jsonl(path):
        check_messages(row.get("messages"), f"{path}:{lineno}")
        if not any(m["role"] == "assistant" for m in row["messages"]):
            raise ReinforgeError(f"{path}:{lineno}: supervised rows need an assistant turn to learn from")
        rows.append(row)
    return rows


def train_supervised(
    cfg: SupervisedConfig,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Next-token loss on assistant tokens; validation loss each checkpoint; same run directory as RFT."""
    import shutil

    import torch

    from reinforge.models.loading import load_model
    from reinforge.train import checkpoint as ck
    from reinforge.train.run import MetricsLog, prepare_run_dir, write_summary
    from reinforge.train.schedule import make_scheduler
    from reinforge.train.sft import pad_batch, sft_loss, tokenize_chat

    run_dir = prepare_run_dir(Path(cfg.output_dir), resume, cfg.to_yaml())
    train, val = _chat_rows(cfg.train_file), _chat_rows(cfg.validation_file) if cfg.validation_file else []
    total = n_steps(len(train), cfg.batch_size, cfg.epochs)
    save_every = cfg.save_interval or max(1, math.ceil(total / 3))
    last = ck.latest_checkpoint(run_dir) if resume else None
    start = ck.load_trainer_state(last)["step"] if last else 0
    torch.manual_seed(cfg.seed)
    model, tok = load_model(str(last) if last else cfg.model, trainable=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    sched = make_scheduler(opt, 0, total, "linear")
    if last:
        ck.load_optimizer_state(last, opt, sched)
    log = MetricsLog(run_dir / "metrics.jsonl", resume_step=start if resume else None)
    enc_train = [tokenize_chat(tok, r["messages"]) for r in train]
    enc_val = [tokenize_chat(tok, r["messages"]) for r in val]
    device = next(model.parameters()).device

    def loss_of(batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        ids, mask, lab = pad_batch([b[0] for b in batch], [b[1] for b in batch], tok.pad_token_id)
        return sft_loss(model, ids.to(device), mask.to(device), lab.to(device))

    def order_for(step: int) -> list[int]:  # epochs are fresh shuffles: the data position follows from step
        out = []
        for pos in range((step - 1) * cfg.batch_size, step * cfg.batch_size):
            epoch, k = divmod(pos, len(enc_train))
            perm = list(range(len(enc_train)))
            random.Random(cfg.seed * 1000 + epoch).shuffle(perm)
            out.append(perm[k])
        return out

    stopped, step = False, start
    for step in range(start + 1, total + 1):
        model.train()
        loss = loss_of([enc_train[i] for i in order_for(step)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        rec = {"step": step, "kind": "train", "loss/sft": loss.item(), "lr": sched.get_last_lr()[0]}
        saving = step == total or step % save_every == 0
        stopped = bool(should_stop and should_stop())
        if enc_val and (saving or stopped):
            model.eval()
            with torch.no_grad():
                rec["eval/loss"] = sum(loss_of([e]).item() for e in enc_val) / len(enc_val)
        log.log(rec)
        if saving or stopped:
            ck.save_checkpoint(
                run_dir, step, model, tok, opt, sched, {"data_position": step * cfg.batch_size}
            )
            ck.prune_checkpoints(run_dir, cfg.keep_checkpoints)
        if on_step:
            on_step(rec)
        if stopped:
            break
    if not stopped:
        tmp = run_dir / "final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        ck.save_pretrained_model(model, tok, tmp)
        shutil.rmtree(run_dir / "final", ignore_errors=True)
        tmp.rename(run_dir / "final")
    summary = {
        "algorithm": "sft",
        "model": cfg.model,
        "steps": step,
        "total_steps": total,
        "status": "stopped" if stopped else "succeeded",
        "run_dir": str(run_dir),
    }
    write_summary(run_dir, summary)
    return summary
