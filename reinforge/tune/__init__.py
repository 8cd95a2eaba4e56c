"""Tune prompts and hyperparameters of LLM apps, agents and training runs against graders.

>>> from reinforge import tune
>>> study = tune.run(lambda p: (p["x"] - 1) ** 2 + p["n"], {"x": tune.Float(-3, 3), "n": tune.Int(0, 4)},
...                  sampler="random", n_trials=40, seed=0)
>>> study.best.params["n"], len(study.trials)
(0, 40)

The YAML objectives are here too: ``LLMClient`` (any OpenAI-compatible endpoint or a local model),
``chat_objective``, ``agent_objective``, ``workflow_objective``, ``answering_rag_objective``; each
returns an objective that ``tune.run`` takes, e.g. ``tune.run(chat_objective(LLMClient("gpt-4o-mini",
base_url), "rows.jsonl", "grader.json"), space, directions={"score": "maximize", "tokens": "minimize"})``.
"""

from typing import Any

from reinforge.tune.chat_objective import chat_objective
from reinforge.tune.evolution import EvolutionSampler, LLMMutator, RuleMutator
from reinforge.tune.executors import LocalExecutor, RayExecutor
from reinforge.tune.llm_client import LLMClient
from reinforge.tune.rag_answer import answering_rag_objective
from reinforge.tune.run import Budget, optimize, run
from reinforge.tune.samplers import GridSampler, OptunaSampler, QuasiRandomSampler, RandomSampler, Sampler
from reinforge.tune.schedulers import ASHA, Hyperband, PairedStopping, Scheduler, SuccessiveHalving
from reinforge.tune.space import Bool, Choice, Float, Int, Space, Subset, Text, nest
from reinforge.tune.storage import Trial
from reinforge.tune.study import Study


def __getattr__(name: str) -> Any:
    if name == "agent_objective":  # imports the agents package (HTTP tools): only agent studies need it
        from reinforge.tune.agent_objective import agent_objective

        return agent_objective
    if name == "workflow_objective":
        from reinforge.tune.workflow_objective import workflow_objective

        return workflow_objective
    raise AttributeError(f"module 'reinforge.tune' has no attribute {name!r}")


__all__ = [
    "run",
    "LLMClient",
    "chat_objective",
    "agent_objective",
    "workflow_objective",
    "answering_rag_objective",
    "optimize",
    "Study",
    "Trial",
    "Budget",
    "Space",
    "Int",
    "Float",
    "Bool",
    "Choice",
    "Text",
    "Subset",
    "nest",
    "Sampler",
    "RandomSampler",
    "QuasiRandomSampler",
    "GridSampler",
    "OptunaSampler",
    "EvolutionSampler",
    "RuleMutator",
    "LLMMutator",
    "Scheduler",
    "SuccessiveHalving",
    "Hyperband",
    "ASHA",
    "PairedStopping",
    "LocalExecutor",
    "RayExecutor",
]
