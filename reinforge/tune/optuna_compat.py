"""Optuna 4.x and 5.x behind one interface, for :class:`reinforge.tune.samplers.OptunaSampler`.

Two differences matter here. Constraints: Optuna 5 keeps them on the trial (``set_constraint``,
``constraints:<key>`` system attributes) and its samplers read them there; Optuna 4 keeps one list
under ``constraints`` and a sampler only looks at it when built with a ``constraints_func``.
Options: ``GPSampler(warn_independent_sampling=...)`` is newer than Optuna 4.2.

>>> constraint_attrs([]) == {}
True
>>> OPTUNA_5 or constraint_attrs([0.5]) == {"constraints": (0.5,)}
True
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import optuna

OPTUNA_5 = int(optuna.__version__.split(".")[0]) >= 5


def accepts(factory: Any, option: str) -> bool:
    """Whether this Optuna's ``factory`` (a sampler class) takes the keyword ``option``."""
    return option in inspect.signature(factory).parameters


def stored_constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """Optuna 4's ``constraints_func``: the values :func:`set_constraints` stored (none: feasible)."""
    return trial.system_attrs.get("constraints") or (0.0,)


def constraint_kwargs(factory: Any, has_constraints: bool) -> dict[str, Any]:
    """What a sampler needs at construction to take constraints into account: nothing on Optuna 5."""
    if OPTUNA_5 or not has_constraints or not accepts(factory, "constraints_func"):
        return {}
    return {"constraints_func": stored_constraints}


def constraint_attrs(values: Sequence[float] | None) -> dict[str, Any]:
    """A finished trial's constraint values as the system attributes ``create_trial`` takes."""
    if not values:
        return {}
    if OPTUNA_5:
        return {f"constraints:{i}": float(c) for i, c in enumerate(values)}
    return {"constraints": tuple(float(c) for c in values)}


def set_constraints(otrial: optuna.Trial, values: Sequence[float] | None) -> None:
    """Record an asked trial's constraint values before it is told, where its sampler reads them."""
    if not values:
        return
    if OPTUNA_5:
        for i, c in enumerate(values):
            otrial.set_constraint(str(i), c)
    else:  # what Optuna 4's own constraints_func handling stores, read back by stored_constraints
        attrs = constraint_attrs(values)
        otrial.storage.set_trial_system_attr(otrial._trial_id, "constraints", attrs["constraints"])
