"""The grader contract: ``grade(item, sample) -> Grade``; ``grade_batch`` is the normal, fast path.

A grader never crashes training: any failure is a recorded zero with an OpenAI-style error flag.

Call order: build once (``from_spec`` or a subclass constructor), then call ``grade_batch`` with many
``(item, sample)`` pairs as often as needed; ``close()`` releases pools or clients.

>>> g = CallableGrader(lambda item, sample: float(sample["output_text"] == item["answer"]))
>>> g.grade({"answer": "4"}, make_sample("4")).reward
1.0
>>> g.grade({}, make_sample("4")).errors
{'python_grader_runtime_error': True}
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reinforge.errors import ReinforgeError


@dataclass
class Grade:
    """One graded sample. ``reward`` is a float (0 when any error fired)."""

    reward: float
    metadata: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, bool] = field(default_factory=dict)  # OpenAI error flag names that fired
    sub_rewards: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.errors.values())


# the keys of every ``sample`` a trainer grades (templates may read only these: ``{{sample.output_text}}``)
SAMPLE_KEYS: tuple[str, ...] = ("output_text", "output_tools", "output_json", "choices", "trajectory")


def make_sample(
    output_text: str,
    output_tools: list | None = None,
    choices: list | None = None,
    trajectory: dict | None = None,
) -> dict:
    """The ``sample`` namespace of OpenAI's graders: text, parsed JSON (when it parses), tools, choices,
    and an agent episode's ``trajectory`` (its messages after the prompt, ``turns``, ``tool_calls``,
    ``invalid_calls``, ``tool_errors``, ``status``; a plain completion is one turn).

    >>> tuple(make_sample("4")) == SAMPLE_KEYS
    True
    """
    sample: dict[str, Any] = {"output_text": output_text, "output_tools": output_tools or []}
    try:
        sample["output_json"] = json.loads(output_text)
    except (json.JSONDecodeError, TypeError, ValueError):
        sample["output_json"] = None
    sample["choices"] = choices if choices is not None else [{"message": {"content": output_text}}]
    sample["trajectory"] = trajectory or {
        "messages": [{"role": "assistant", "content": output_text}],
        "turns": 1,
        "tool_calls": len(sample["output_tools"]),
        "invalid_calls": 0,
        "tool_errors": 0,
        "status": "done",
        "truncation": None,
    }
    return sample


class GraderError(ReinforgeError):
    """A grader that cannot grade a run: a template names a field the rows lack (found before training),
    or every grade of a step failed. ``kind`` is the OpenAI error flag that fired, ``details`` its text."""

    def __init__(self, message: str, kind: str = "invalid_variable_error", details: str = ""):
        super().__init__(message)
        self.kind, self.details = kind, details


class Grader(ABC):
    """Turns ``(item, sample)`` into a :class:`Grade`. Subclasses implement ``grade``; batch is optional."""

    name: str = "grader"
    spec_type: str | None = None  # the grader JSON's ``type``, set by ``build_grader``

    @abstractmethod
    def grade(self, item: dict, sample: dict) -> Grade:
        """Score one sample for one dataset row; must not raise."""

    def grade_batch(self, pairs: Sequence[tuple[dict, dict]]) -> list[Grade]:
        """Score many pairs, in input order. Override for parallelism or vectorisation."""
        return [self.grade(item, sample) for item, sample in pairs]

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release pools, clients or models held by the grader."""

    def __call__(self, item: dict, sample: dict) -> float:
        return self.grade(item, sample).reward


class CallableGrader(Grader):
    """A plain Python function ``f(item, sample) -> float`` as a grader (runs in-process, unsandboxed)."""

    def __init__(self, fn: Callable[[dict, dict], float], name: str | None = None):
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "callable"))

    def grade(self, item: dict, sample: dict) -> Grade:
        try:
            value = self.fn(item, sample)
            reward = float(value)
        except Exception as e:  # a grader never crashes training
            return Grade(0.0, {"error": f"{type(e).__name__}: {e}"}, {"python_grader_runtime_error": True})
        if not math.isfinite(reward):
            return Grade(
                0.0, {"error": f"non-finite reward {value!r}"}, {"python_grader_runtime_error": True}
            )
        return Grade(reward)


# OpenAI's error flags in the graders/run response, in its order; ``*_details``/``*_type`` carry text.
ERROR_FLAGS: tuple[str, ...] = (
    "formula_parse_error",
    "sample_parse_error",
    "truncated_observation_error",
    "unresponsive_reward_error",
    "invalid_variable_error",
    "other_error",
    "python_grader_server_error",
    "python_grader_runtime_error",
    "model_grader_server_error",
    "model_grader_refusal_error",
    "model_grader_parse_error",
)
ERROR_DETAILS: tuple[str, ...] = (
    "python_grader_server_error_type",
    "python_grader_runtime_error_details",
    "model_grader_server_error_details",
)


def error_grade(flag: str, details: str = "", **metadata: Any) -> Grade:
    """A recorded zero: ``flag`` fired; ``details`` go to the matching ``*_details`` metadata key.

    >>> error_grade("invalid_variable_error", "item.x is missing").errors
    {'invalid_variable_error': True}
    """
    detail_key = {
        "python_grader_runtime_error": "python_grader_runtime_error_details",
        "python_grader_server_error": "python_grader_server_error_type",
        "model_grader_server_error": "model_grader_server_error_details",
    }.get(flag)
    meta = dict(metadata)
    meta["error"] = details or flag
    if detail_key:
        meta[detail_key] = details
    return Grade(0.0, meta, {flag: True})
