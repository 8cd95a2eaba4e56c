"""``/v1/fine_tuning/alpha/graders/run`` and ``/validate``: OpenAI's request and response shapes.

The graders package owns the logic (``reinforge.graders.registry.run`` / ``validate``); this module only
adapts it to HTTP and builds the grader a training job uses.
"""

from __future__ import annotations

import time
from typing import Any

from reinforge.errors import ReinforgeError
from reinforge.graders.base import Grade, Grader, make_sample

# OpenAI's ``metadata.errors`` always lists every flag, most false
ERROR_FLAGS = [
    "formula_parse_error",
    "invalid_variable_error",
    "model_grader_parse_error",
    "model_grader_refusal_error",
    "model_grader_server_error",
    "other_error",
    "python_grader_runtime_error",
    "python_grader_server_error",
    "sample_parse_error",
    "truncated_observation_error",
    "unresponsive_reward_error",
]


def _registry():
    try:
        from reinforge.graders import registry
    except ImportError:
        return None
    return registry


def build_grader(spec: dict) -> Grader:
    """A grader object from OpenAI grader JSON; raises ReinforgeError naming the bad key."""
    reg = _registry()
    if reg is not None:
        return reg.build_grader(spec)
    if not isinstance(spec, dict) or spec.get("type") != "string_check":  # until the registry lands
        raise ReinforgeError(
            f"grader.type {spec.get('type') if isinstance(spec, dict) else spec!r}: "
            "only string_check is available in this build"
        )
    from reinforge.graders.string_check import StringCheckGrader

    for key in ("input", "reference", "operation"):
        if key not in spec:
            raise ReinforgeError(f"grader.{key}: missing (string_check needs input, reference, operation)")
    try:
        return StringCheckGrader(spec)
    except KeyError as e:
        raise ReinforgeError(
            f"grader.operation {spec.get('operation')!r}: must be eq, ne, like or ilike ({e})"
        ) from None


def validate_grader(spec: dict) -> dict:
    reg = _registry()
    if reg is not None and hasattr(reg, "validate"):
        return reg.validate(spec)
    build_grader(spec)
    return {"grader": spec}


def grade_response(grade: Grade, spec: dict, seconds: float) -> dict:
    """OpenAI's GraderRunResponse for one Grade."""
    errors: dict[str, Any] = {flag: False for flag in ERROR_FLAGS}
    errors.update(grade.errors)
    if grade.metadata.get("error") and any(grade.errors.values()):
        errors.setdefault("python_grader_runtime_error_details", str(grade.metadata["error"]))
    return {
        "reward": grade.reward,
        "metadata": {
            "name": spec.get("name", spec.get("type", "grader")),
            "type": spec.get("type", ""),
            "errors": errors,
            "execution_time": seconds,
            "scores": {**grade.sub_rewards, **{k: v for k, v in grade.metadata.items() if k != "error"}},
            "token_usage": grade.metadata.get("token_usage"),
            "sampled_model_name": None,
        },
        "sub_rewards": dict(grade.sub_rewards),
        "model_grader_token_usage_per_model": {},
    }


def run_grader(spec: dict, model_sample: str, item: dict | None) -> dict:
    reg = _registry()
    if reg is not None and hasattr(reg, "run"):
        return reg.run(spec, model_sample, item or {})
    t0 = time.perf_counter()
    grade = build_grader(spec).grade(item or {}, make_sample(model_sample))
    return grade_response(grade, spec, time.perf_counter() - t0)
