"""OpenAI's fine-tuning shapes -> reinforge: a job's ``method`` becomes one trainer config, with one set of defaults.

``method = {"type": "reinforcement", "reinforcement": {"grader": ..., "hyperparameters": {...}}}`` maps to
:class:`~reinforge.train.grpo.GRPOConfig`; ``supervised`` and ``dpo`` to the SFT and DPO configs. Agent
RFT's ``tools`` (HTTP endpoints ``{name, server_url, headers}``) and ``max_episode_steps`` in
``method.reinforcement`` become the config's ``agent`` section: the model calls them in multi-turn episodes. The
trainer config starts from its class's defaults, the ones ``reinforge rft|sft|dpo CONFIG.yaml`` uses, so a
job trains as the CLI does; OpenAI's hyperparameters map onto it by :mod:`reinforge.train.hyperparameters`
(GRPOConfig's ``hyperparameters:`` block calls the same function), and a ``reinforge`` object inside
``method`` (an extension) sets any other trainer field, e.g. ``{"max_new_tokens": 8}``.

Only how the service runs a job differs from the CLI (:data:`SERVICE_RUN`): no progress bar, about three
checkpoints per job, all kept, an SFT/DPO validation every tenth of the run, and no split of the training
file (as in OpenAI's API, only a ``validation_file`` validates).

The service calls :func:`job_config` once, when a job is created, and stores the result with the job;
the worker rebuilds it with :func:`stored_config` and trains it with :func:`run_training`.

>>> cfg = job_config({"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
...                  "tiny:addition:1m", "train.jsonl", None, "runs/job", seed=0, n_train_rows=64)
>>> type(cfg).__name__, cfg.epochs, cfg.learning_rate, cfg.save_interval  # SFTConfig's learning rate
('SFTConfig', 2.0, 2e-05, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from reinforge.config import format_validation_error
from reinforge.errors import ConfigError
from reinforge.models.loading import load_tokenizer
from reinforge.train.agent import AgentSettings
from reinforge.train.batching import steps_for
from reinforge.train.dpo import DPOConfig, load_pairs, train_dpo
from reinforge.train.grpo import GRPOConfig, train_grpo
from reinforge.train.hyperparameters import base_values, map_hyperparameters
from reinforge.train.sft_trainer import SFTConfig, load_sft_rows, step_units, train_sft
from reinforge.train.trackers import check_installed
from reinforge.train.warmup import resolve_model

# method.type -> (trainer config, trainer); every trainer has the call shape
# ``train(cfg, resume, on_step, should_stop) -> summary``
TrainerConfig = GRPOConfig | SFTConfig | DPOConfig
METHODS: dict[str, tuple[type[TrainerConfig], Callable[..., dict]]] = {
    "reinforcement": (GRPOConfig, train_grpo),
    "supervised": (SFTConfig, train_sft),
    "dpo": (DPOConfig, train_dpo),
}
# the row formats (serve/uploads.py) each method trains on
FILE_KINDS = {"reinforcement": ("chat",), "supervised": ("chat",), "dpo": ("dpo", "preference")}
# how the service runs every job (not what it learns): no terminal, ~3 checkpoints per job, all kept
SERVICE_RUN: dict[str, Any] = {"progress": False, "keep_checkpoints": 3}
# and no grader audit before an RFT job (train/grader_audit.py): no one reads a terminal there, and a model
# grader's calls cost; method.reinforge = {"audit": true} runs it (audit.json in the job's run directory)
SERVICE_RUN_RFT: dict[str, Any] = {"audit": False}
NO_SPLIT = {"supervised": None, "dpo": 0.0}  # the training file is not split (GRPO never splits by default)
# fields the job itself sets: method.reinforge may not
JOB_FIELDS = ("model", "train_file", "validation_file", "output_dir", "seed")
# Agent RFT's keys in method.reinforcement: the tool endpoints the model calls in its episodes and the
# turns an episode may take; they map onto GRPOConfig's ``agent`` section (train/agent.py)
AGENT_KEYS = ("tools", "max_episode_steps")


def method_type(method: dict[str, Any]) -> str:
    """``method.type``, checked."""
    kind = method.get("type")
    if kind not in METHODS:
        raise ConfigError(f"method.type {kind!r}: must be one of {', '.join(METHODS)}")
    return kind


def job_method(method: dict[str, Any] | None, hyperparameters: dict[str, Any] | None) -> dict[str, Any]:
    """OpenAI's ``method`` object, or the legacy top-level supervised ``hyperparameters`` as one."""
    out = dict(method or {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}})
    method_type(out)
    return out


def job_config(
    method: dict[str, Any],
    model: str,
    train_file: str,
    validation_file: str | None,
    output_dir: str,
    seed: int,
    n_train_rows: int,
    integrations: list[Any] | None = None,
) -> TrainerConfig:
    """The trainer config of one job, with about three checkpoints over the steps the trainer will run
    (:func:`planned_steps`; ``train_file`` holds ``n_train_rows`` rows) and the job's ``integrations``
    (:func:`integration_trackers`). Raises ConfigError naming the offending key under ``method.``."""
    kind = method_type(method)
    cls = METHODS[kind][0]
    body = method.get(kind) or {}
    extra = dict(method.get("reinforge") or {})
    for key in JOB_FIELDS:
        if key in extra:
            raise ConfigError(
                f"method.reinforge.{key}: set by the job itself; remove it from method.reinforge"
            )
    data: dict[str, Any] = {**SERVICE_RUN, **(SERVICE_RUN_RFT if kind == "reinforcement" else {}), **extra}
    if kind in NO_SPLIT:
        data.setdefault("validation_split", NO_SPLIT[kind])
    hp = body.get("hyperparameters") or {}
    data.update(map_hyperparameters(kind, hp, base_values(cls, kind, data), where=f"method.{kind}."))
    if kind == "reinforcement":
        if not isinstance(body.get("grader"), dict) or not body["grader"]:  # never a path on the server
            raise ConfigError("method.reinforcement.grader: required, an OpenAI grader JSON object")
        data["grader"] = body["grader"]
        agent = {**(data.get("agent") or {}), **{k: body[k] for k in AGENT_KEYS if k in body}}
        if agent:
            data["agent"] = service_agent(agent)
    for name, value in integration_trackers(integrations).items():
        data[name] = value if name == "tracker_args" else sorted({*data.get(name, []), *value})
    data.update(
        model=model, train_file=train_file, validation_file=validation_file, output_dir=output_dir, seed=seed
    )
    try:
        cfg = cls.model_validate(data)
    except ValidationError as e:
        grader_error = any(err["loc"][:1] == ("grader",) for err in e.errors())
        where = "method.reinforcement" if grader_error else "method"
        raise ConfigError(format_validation_error(e, where, cls)) from None
    check_installed(cfg.report_to, "integrations" if integrations else "method.reinforge.report_to")
    total = planned_steps(cfg, n_train_rows)
    if "save_interval" not in extra:  # about three checkpoints per job, like OpenAI's per-epoch ones
        cfg.save_interval = max(1, math.ceil(total / 3))
    if kind != "reinforcement" and "eval_interval" not in extra:  # RFT keeps its own validation cadence
        cfg.eval_interval = max(1, math.ceil(total / 10))
    return cfg


def service_agent(agent: dict[str, Any]) -> dict[str, Any]:
    """A job's agent settings, checked: its tools must be HTTP endpoints (``{name, server_url, headers}``);
    a Python tool or environment would run the job owner's choice of code in the worker, outside the sandbox."""
    if not isinstance(agent.get("tools", []), list):
        raise ConfigError(
            "method.reinforcement.tools: must be a list of {name, server_url, headers} endpoints"
        )
    for i, tool in enumerate(agent.get("tools", [])):
        if not isinstance(tool, dict) or "server_url" not in tool or "python" in tool:
            raise ConfigError(
                f"method.reinforcement.tools[{i}]: the service calls tools over HTTP only; give "
                "{name, server_url, headers} (Python tools are for `reinforge rft` on your own machine)"
            )
    if agent.get("environment") is not None:
        raise ConfigError(
            "method.reinforge.agent.environment: not available in the service (it imports code in the "
            "worker); use tool endpoints, or `reinforge rft` on your own machine"
        )
    try:  # checked here so that a bad value is named where the job wrote it, not as the trainer's key
        AgentSettings.model_validate(agent)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, "method.reinforcement", AgentSettings)) from None
    return agent


def integration_trackers(integrations: list[Any] | None) -> dict[str, Any]:
    """OpenAI's ``integrations: [{"type": "wandb", "wandb": {"project", "name"?, "entity"?, "tags"?}}]``
    as trainer keys: ``report_to: [wandb]`` and ``tracker_args.wandb`` (the worker's WANDB_API_KEY or
    WANDB_MODE decide where the run goes).

    >>> integration_trackers([{"type": "wandb", "wandb": {"project": "p", "tags": ["a"]}}])
    {'report_to': ['wandb'], 'tracker_args': {'wandb': {'project': 'p', 'tags': ['a']}}}
    """
    if not integrations:
        return {}
    if not isinstance(integrations, list) or len(integrations) > 1:
        raise ConfigError("integrations: a list of at most one {type: wandb, wandb: {project, ...}} object")
    item = integrations[0]
    if not isinstance(item, dict) or item.get("type") != "wandb":
        raise ConfigError("integrations[0].type: only 'wandb' is supported; give {type: wandb, wandb: {...}}")
    wandb = item.get("wandb")
    if not isinstance(wandb, dict) or not isinstance(wandb.get("project"), str):
        raise ConfigError("integrations[0].wandb.project: required, the W&B project name")
    unknown = sorted(set(wandb) - {"project", "name", "entity", "tags"})
    if unknown:
        raise ConfigError(f"integrations[0].wandb.{unknown[0]}: unknown key; use project, name, entity, tags")
    return {"report_to": ["wandb"], "tracker_args": {"wandb": wandb}}


def job_integrations(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A job's ``integrations`` as OpenAI returns them, from its stored trainer config."""
    if not config or "wandb" not in config.get("report_to", []):
        return []
    return [{"type": "wandb", "wandb": config.get("tracker_args", {}).get("wandb", {})}]


def planned_steps(cfg: TrainerConfig, n_train_rows: int) -> int:
    """The steps the trainer will run for ``cfg`` (``n_train_rows`` rows in its ``train_file``): ``steps_for``
    over what the trainer batches, as it counts it: prompts (RFT), the pairs its rows expand to after
    its split (DPO: a ranking of K responses is K(K-1)/2 pairs), rows or, with ``packing``, packed rows
    (SFT: the model's tokenizer packs them)."""
    if isinstance(cfg, GRPOConfig):
        return steps_for(cfg.steps, cfg.epochs, n_train_rows, cfg.prompts_per_step)
    if isinstance(cfg, DPOConfig):
        return steps_for(cfg.steps, cfg.epochs, len(load_pairs(cfg)[0]), cfg.batch_size)
    if cfg.packing and not cfg.steps:
        tok = load_tokenizer(resolve_model(cfg.model))
        n_train_rows = len(step_units(cfg, tok, load_sft_rows(cfg)[0]))
    return steps_for(cfg.steps, cfg.epochs, n_train_rows, cfg.batch_size)


def stored_config(method: dict[str, Any], stored: dict[str, Any]) -> TrainerConfig:
    """The config :func:`job_config` resolved for a job, from its stored form (``model_dump(mode="json")``)."""
    return METHODS[method_type(method)][0].model_validate(stored)


def run_training(
    cfg: TrainerConfig, resume: bool, on_step: Callable[[dict], None], should_stop: Callable[[], bool]
) -> dict:
    """Train ``cfg`` with the trainer that owns its type; returns the run's summary."""
    trainer = next(train for cls, train in METHODS.values() if type(cfg) is cls)
    return trainer(cfg, resume=resume, on_step=on_step, should_stop=should_stop)
