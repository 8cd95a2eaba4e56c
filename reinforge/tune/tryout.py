"""Try one configuration by hand, for the manual mode: run it on a few examples, show what it said, and
estimate what a whole trial of it costs.

``reinforge tune ask CONFIG.yaml`` prints :func:`estimate_line` for the trial it asks (a dry run on one
example); the web UI's scoring page (``serve/trials.py``) shows :func:`try_params`'s outputs to a person,
whose score is told to the study. The outputs land in the study's cache: a later run of the same
configuration does not pay for them again.

>>> estimate_line({"examples": 30, "tokens": 4500.0, "usd": 0.0012, "seconds": 12.0}, 1)
'this trial on its 30 examples, from a dry run on 1: about 4500 tokens, $0.0012, 12.0 s of model time'
"""

from __future__ import annotations

import json
from typing import Any

from reinforge.tune.objectives import ExampleObjective
from reinforge.tune.schema import TuneConfig
from reinforge.tune.space import nest

LLM_TYPES = ("chat", "agent", "workflow")  # and rag with an llm: objectives whose examples call a model


def is_llm_study(cfg: TuneConfig) -> bool:
    """Whether ``cfg``'s objective runs a model on examples (so a trial can be tried and priced)."""
    return cfg.objective.type in LLM_TYPES or (cfg.objective.type == "rag" and cfg.objective.llm is not None)


def try_params(objective: ExampleObjective, params: dict, n: int) -> dict[str, Any]:
    """Run ``params`` (dotted names, as a trial holds them) on ``n`` examples: each one's prompt, the
    reference fields, the output, the grader's grade and notes and an agent's trajectory; the metrics;
    and the whole trial's :func:`trial_estimate`."""
    nested = nest(params)
    metrics = objective(nested, n)
    examples = []
    for row in objective.rows[:n]:
        rec = objective.cache.cache_get(objective.key(nested, row)) or {}
        examples.append(
            {
                "input": prompt_text(row),
                "expected": {k: v for k, v in row.items() if k not in ("messages", "tools")},
                "output": rec.get("output_text", ""),
                "grade": rec.get("reward"),
                "notes": rec.get("notes") or {},
                "trajectory": rec.get("trace"),
            }
        )
    keep = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {"examples": examples, "metrics": keep, "estimate": trial_estimate(metrics, objective.n_examples)}


def trial_estimate(metrics: dict, n_examples: int) -> dict[str, float]:
    """A whole trial's tokens, money and model time: the per-example means of ``metrics`` (from a few
    examples) times the ``n_examples`` a trial grades."""
    return {
        "examples": n_examples,
        "tokens": metrics["tokens"] * n_examples,
        "usd": metrics["usd"] * n_examples,
        "seconds": metrics["latency_s"] * n_examples,
    }


def estimate_line(est: dict, tried: int) -> str:
    return (
        f"this trial on its {est['examples']} examples, from a dry run on {tried}: about "
        f"{est['tokens']:.0f} tokens, ${est['usd']:.4f}, {est['seconds']:.1f} s of model time"
    )


def prompt_text(row: dict) -> str:
    """The example as a person reads it: its messages one per line, else its question or the row."""
    if row.get("messages"):
        return "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in row["messages"])
    return str(row.get("question") or json.dumps(row, default=str))
