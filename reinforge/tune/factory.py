"""The objective a tune config names (rag, generation, train or a Python function), and the cost
gate a study passes before it starts."""

from __future__ import annotations

import importlib
from pathlib import Path

from reinforge.errors import ConfigError, ReinforgeError
from reinforge.tune.agent_objective import agent_objective
from reinforge.tune.chat_objective import chat_objective
from reinforge.tune.generation import generation_objective
from reinforge.tune.llm_client import LLMClient
from reinforge.tune.objectives import ExampleObjective, estimate_cost
from reinforge.tune.rag import rag_objective
from reinforge.tune.rag_answer import answering_rag_objective
from reinforge.tune.schema import TuneConfig
from reinforge.tune.space import Space
from reinforge.tune.study import Study
from reinforge.tune.train_objective import TrainObjective
from reinforge.tune.workflow_objective import workflow_objective


def build_study(cfg: TuneConfig) -> Study:
    """The study ``cfg`` describes, in its storage (created there on first use, else loaded)."""
    return Study(
        Space.from_dict(cfg.space),
        cfg.sampler,
        cfg.objectives,
        cfg.study_storage,
        cfg.study,
        cfg.seed,
        cfg.constraints or None,
        cfg.n_trials,
    )


def build_objective(cfg: TuneConfig, base_dir: Path):
    """The callable a study optimises, from ``cfg.objective`` (relative paths from ``base_dir``)."""
    o = cfg.objective

    def path(p: str | None, key: str) -> str:
        if not p:
            raise ConfigError(f"objective.{key}: required for objective type {o.type}")
        q = Path(p)
        return str(q if q.is_absolute() or q.exists() else base_dir / q)

    if o.type in ("chat", "agent", "workflow") or (o.type == "rag" and o.llm is not None):
        obj = llm_objective(cfg, path, base_dir)
        client: LLMClient = obj.pipeline.client  # type: ignore[attr-defined]
        client.check()  # before anything starts: an unreachable endpoint is one line, not failed trials
        return obj
    if o.type == "rag":
        obj = rag_objective(
            path(o.documents, "documents"), path(o.questions, "questions"), cache=cfg.storage_path
        )
        obj.score_name = "recall"
        return obj
    if o.type == "generation":
        if not o.model:
            raise ConfigError("objective.model: required for objective type generation")
        obj = generation_objective(
            o.model,
            o.task,
            o.examples,
            o.shots,
            cfg.seed,
            o.grader,
            cfg.storage_path,
            cfg.prices.input_per_1k,
            cfg.prices.output_per_1k,
        )
        obj.score_name = "reward"
        return obj
    if o.type == "train":
        if o.base is None:
            raise ConfigError("objective.base: give the GRPO config (inline or a YAML path) to tune")
        base = path(o.base, "base") if isinstance(o.base, str) else o.base
        max_budget = (cfg.scheduler or {}).get("max_budget")  # the LR schedule spans the longest trial
        return TrainObjective(base, Path(cfg.output_dir) / "runs" / cfg.study, max_budget)
    if not o.function or ":" not in o.function:
        raise ConfigError("objective.function: write it as 'package.module:function'")
    mod, _, attr = o.function.partition(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"objective.function {o.function!r}: cannot import ({e})") from None


def llm_objective(cfg: TuneConfig, path, base_dir: Path) -> ExampleObjective:
    """A chat, agent or answering-RAG objective: the user's rows and grader, through ``objective.llm``."""
    o = cfg.objective
    if o.llm is None:
        raise ConfigError(
            f"objective.llm: give the model ({{model: ..., base_url: ...}}) for a {o.type} study"
        )
    if o.grader is None:
        raise ConfigError(
            f"objective.grader: give the OpenAI grader JSON (inline or a file) that scores a {o.type}"
        )
    client, cache = make_client(cfg), cfg.storage_path
    grader = path(o.grader, "grader") if isinstance(o.grader, str) else o.grader
    if o.type == "rag":  # answers generated from the retrieved context
        docs, questions = path(o.documents, "documents"), path(o.questions, "questions")
        return answering_rag_objective(client, docs, questions, grader, cache, prices(cfg))
    if o.type == "workflow":
        if not o.workflow:
            raise ConfigError("objective.workflow: give the workflow's steps (inline or a YAML file)")
        space = Space.from_dict(cfg.space)
        wf = o.workflow
        return workflow_objective(
            client, path(o.data, "data"), grader, wf, space, base_dir, cache, prices(cfg)
        )
    if o.type == "chat":
        shots = path(o.few_shot_data, "few_shot_data") if o.few_shot_data else None
        return chat_objective(client, path(o.data, "data"), grader, shots, cache, prices(cfg))
    if not o.tools:
        raise ConfigError("objective.tools: give the tools the agent may call (a list of specs or a file)")
    space = Space.from_dict(cfg.space)
    data = path(o.data, "data")
    return agent_objective(client, data, grader, o.tools, space, base_dir, cache, prices(cfg), o.agents)


def prices(cfg: TuneConfig) -> tuple[float, float]:
    return cfg.prices.input_per_1k, cfg.prices.output_per_1k


def make_client(cfg: TuneConfig) -> LLMClient:
    """The client of ``objective.llm``, caching greedy requests in the study's file."""
    s = cfg.objective.llm
    assert s is not None
    return LLMClient(
        s.model,
        s.base_url,
        s.api_key_env,
        s.concurrency,
        s.max_retries,
        s.timeout_s,
        price_per_1k_input=cfg.prices.input_per_1k,
        price_per_1k_output=cfg.prices.output_per_1k,
        cache=cfg.storage_path,
    )


def check_estimate(cfg: TuneConfig, objective, space, yes: bool, echo=print) -> dict | None:
    """Print the cost estimate; refuse past a budget cap unless ``yes``."""
    if not isinstance(objective, ExampleObjective) or cfg.estimate_probes <= 0:
        return None
    per_trial = cfg.scheduler.get("max_budget") if cfg.scheduler else None
    est = estimate_cost(objective, space, cfg.n_trials, per_trial, probes=cfg.estimate_probes, seed=cfg.seed)
    lo, hi = est["seconds_range"]
    duration = lambda s: f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"  # noqa: E731
    echo(
        f"estimate for {cfg.n_trials} trials from a timed pilot ({est['pilot_examples']} examples graded): "
        f"at most {est['examples']:.0f} graded examples, {est['model_calls']:.0f} model calls, "
        f"{est['tokens']:.0f} tokens, ${est['cost_usd']:.2f}; time about {duration(est['seconds'])} "
        f"({duration(lo)} to {duration(hi)} at the pilot's fastest and slowest trial, after "
        f"{est['setup_s']:.0f} s loading; cache hits, a scheduler and other load change it)"
    )
    caps = {"examples": "examples", "tokens": "tokens", "cost_usd": "cost_usd", "seconds": "seconds"}
    for key, cap_name in caps.items():
        cap = getattr(cfg.budget, cap_name)
        if cap is not None and est[key] > cap and not yes:
            raise ReinforgeError(
                f"estimated {key} {est[key]:.4g} exceeds budget.{cap_name}={cap}; pass --yes to "
                f"start anyway (the study stops at the cap) or raise budget.{cap_name}"
            )
    return est


class ScoreRenamer:
    """Expose an example objective's ``score`` under its task's name (``recall``, ``reward``)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, params: dict, budget: int | None = None) -> dict:
        m = self.inner(params, budget)
        return {**m, self.inner.score_name: m["score"]}
