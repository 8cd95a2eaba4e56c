"""Tune prompts and hyperparameters of LLM apps, agents and training runs against graders.

>>> from reinforge import tune
>>> study = tune.run(lambda p: (p["x"] - 1) ** 2 + p["n"], {"x": tune.Float(-3, 3), "n": tune.Int(0, 4)},
...                  sampler="random", n_trials=40, seed=0)
>>> study.best.params["n"], len(study.trials)
(0, 40)
"""

from reinforge.tune.evolution import EvolutionSampler, LLMMutator, RuleMutator
from reinforge.tune.executors import LocalExecutor, RayExecutor
from reinforge.tune.run import Budget, optimize, run
from reinforge.tune.samplers import GridSampler, OptunaSampler, QuasiRandomSampler, RandomSampler, Sampler
from reinforge.tune.schedulers import ASHA, Hyperband, PairedStopping, Scheduler, SuccessiveHalving
from reinforge.tune.space import Bool, Choice, Float, Int, Space, Subset, Text, nest
from reinforge.tune.storage import Trial
from reinforge.tune.study import Study

__all__ = [
    "run",
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
