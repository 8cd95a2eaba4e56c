"""From an OpenAI job object to a reinforge trainer run: config building and dispatch by ``method.type``.

``method = {"type": "reinforcement", "reinforcement": {"grader": ..., "hyperparameters": {...}}}`` maps to
:class:`~reinforge.train.grpo.GRPOConfig`; ``supervised`` and ``dpo`` to the SFT and DPO trainers. A
``reinforge`` object inside ``method`` (an extension) sets any trainer field directly, e.g.
``{"max_new_tokens": 8}``. Every trainer shares one call shape:
``train(cfg, resume, on_step, should_stop) -> summary``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from reinforge.errors import ConfigError

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
    """The trainer config for one job, with about three checkpoints over the steps the trainer will run
    (``n_train_rows`` of ``train_file``; DPO counts the file's pairs); raises ConfigError with the
    offending key named."""
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
            rows_per_step = cfg.prompts_per_step
        else:
            if kind == "supervised":
                from reinforge.train.sft_trainer import SFTConfig as config_class
            else:
                from reinforge.train.dpo import DPOConfig as config_class
            fields = {**SERVICE_DEFAULTS[kind], **openai_hyperparameters(kind, hp)}
            split = None if kind == "supervised" else 0.0
            cfg = config_class(**common, validation_split=split, **{**fields, **extra})
            rows_per_step = cfg.batch_size
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "method"
        raise ConfigError(f"method.{where}: {err['msg']}") from None
    if kind == "dpo":  # DPO trains on pairs: a ranking of K responses is K(K-1)/2 of them
        from reinforge.data.preferences import load_preferences, to_pairs

        n_train_rows = len(to_pairs(load_preferences(train_file)))
    total = cfg.steps or n_steps(n_train_rows, rows_per_step, cfg.epochs)  # as the trainer counts steps
    if "save_interval" not in extra:  # about three checkpoints per job, like OpenAI's per-epoch ones
        cfg.save_interval = max(1, math.ceil(total / 3))
    if kind != "reinforcement" and "eval_interval" not in extra:  # RFT keeps its own validation cadence
        cfg.eval_interval = max(1, math.ceil(total / 10))
    return cfg


# Service defaults for the tiny and small open models a job fine-tunes; OpenAI's
# ``learning_rate_multiplier`` scales ``learning_rate``.
SERVICE_DEFAULTS: dict[str, dict[str, Any]] = {
    "supervised": {"epochs": 3.0, "batch_size": 8, "learning_rate": 1e-4, "keep_checkpoints": 3},
    "dpo": {"epochs": 3.0, "batch_size": 8, "learning_rate": 1e-5, "beta": 0.1, "keep_checkpoints": 3},
}
OPENAI_HYPERPARAMETERS = {
    "supervised": ("batch_size", "learning_rate_multiplier", "n_epochs"),
    "dpo": ("batch_size", "beta", "learning_rate_multiplier", "n_epochs"),
}


def openai_hyperparameters(kind: str, hp: dict) -> dict[str, Any]:
    """OpenAI's supervised/DPO hyperparameter names -> SFTConfig/DPOConfig fields."""
    out: dict[str, Any] = {}
    for name, value in hp.items():
        if name not in OPENAI_HYPERPARAMETERS[kind]:
            raise ConfigError(
                f"method.{kind}.hyperparameters.{name}: unknown; known: {', '.join(OPENAI_HYPERPARAMETERS[kind])}"
            )
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(
                f"method.{kind}.hyperparameters.{name}: must be a positive number, got {value!r}"
            )
        if name == "n_epochs":
            out["epochs"] = float(value)
        elif name == "learning_rate_multiplier":
            out["learning_rate"] = SERVICE_DEFAULTS[kind]["learning_rate"] * float(value)
        elif name == "batch_size":
            out["batch_size"] = int(value)
        else:
            out[name] = float(value)
    return out


def run_training(cfg, resume: bool, on_step: Callable[[dict], None], should_stop: Callable[[], bool]) -> dict:
    """Dispatch to the trainer that owns ``cfg``'s type."""
    from reinforge.train.dpo import DPOConfig, train_dpo
    from reinforge.train.grpo import GRPOConfig, train_grpo
    from reinforge.train.sft_trainer import SFTConfig, train_sft

    trainer = {GRPOConfig: train_grpo, SFTConfig: train_sft, DPOConfig: train_dpo}[type(cfg)]
    return trainer(cfg, resume=resume, on_step=on_step, should_stop=should_stop)
