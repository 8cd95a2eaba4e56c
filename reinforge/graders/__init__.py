"""Graders: OpenAI's grader JSON verbatim, plus Python callables and reward models.

``as_grader`` is what trainers call: it accepts a :class:`Grader`, a plain function
``f(item, sample) -> float``, a spec dict, or a path to a JSON/YAML spec.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reinforge.graders.base import CallableGrader, Grade, Grader, make_sample

__all__ = ["Grade", "Grader", "CallableGrader", "make_sample", "as_grader", "from_spec", "validate", "run"]


def from_spec(spec: dict | str | Path) -> Grader:
    """Build a grader from OpenAI's grader JSON (a dict, or a path to .json/.yaml)."""
    from reinforge.graders.registry import build_grader

    return build_grader(spec)


def validate(spec: dict | str | Path, raise_errors: bool = False) -> list[str]:
    """Every problem in a grader spec, one line each (``[]`` when valid); see ``registry.validate``."""
    from reinforge.graders.registry import validate as _validate

    return _validate(spec, raise_errors)


def run(spec: dict | str | Path, model_sample: str | dict, item: dict | None = None) -> dict:
    """Grade one sample and answer in the shape of OpenAI's ``graders/run`` response."""
    from reinforge.graders.registry import run as _run

    return _run(spec, model_sample, item)


def as_grader(obj: Grader | Callable[[dict, dict], Any] | dict | str | Path) -> Grader:
    if isinstance(obj, Grader):
        return obj
    if isinstance(obj, dict | str | Path):
        return from_spec(obj)
    if callable(obj):
        return CallableGrader(obj)
    raise TypeError(f"cannot make a grader from {type(obj).__name__}")
