"""The sampler protocol: what a study hands a sampler (:class:`AskContext`) and what it calls.

Call order (the study does this): ``ask(ctx)`` returns the parameters of trial ``ctx.number``; once
that trial ends, ``tell(trial)``. ``ctx.trials`` always holds the whole history (from storage), so a
sampler may be stateless and rebuild whatever it needs from it, which is what makes a killed study
resumable and the manual ``tune ask`` / ``tune tell`` mode work across processes. ``ask`` may raise
:class:`SearchExhausted` when nothing new is left to propose.

The reference implementation is :class:`reinforge.tune.samplers.RandomSampler`; the others are in
``samplers.py`` (grid, quasirandom, Optuna's) and ``evolution.py``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from reinforge.tune.space import Space
from reinforge.tune.storage import Trial


class SearchExhausted(Exception):
    """The sampler has nothing new to propose (a finished grid)."""


@dataclass
class AskContext:
    space: Space
    trials: list[Trial]  # every trial so far, finished or not
    number: int  # the number of the trial being asked for
    directions: list[str]
    has_constraints: bool = False
    extra: dict = field(default_factory=dict)


class Sampler(ABC):
    """Proposes the next configuration from the history. One abstract method; ``tell`` is optional."""

    name = "sampler"

    @abstractmethod
    def ask(self, ctx: AskContext) -> dict[str, Any]:
        """Parameters for trial ``ctx.number`` (only active parameters)."""

    def tell(self, trial: Trial) -> None:  # noqa: B027 - optional hook
        """Hear how a trial ended (values, state); default: nothing to update."""

    def spec(self) -> dict:
        """What ``make_sampler`` needs to rebuild this sampler (stored with the study)."""
        return {"name": self.name}


def config_key(params: dict) -> str:
    """A configuration's identity: its parameters as canonical JSON (grid and evolution skip repeats)."""
    return json.dumps(params, sort_keys=True, default=str)
