"""``/v1/fine_tuning/alpha/graders/run`` and ``/validate``: OpenAI's request and response shapes.

The graders package owns the logic (``reinforge.graders.registry``); this module only adapts it to HTTP.

>>> spec = {"type": "string_check", "name": "s", "input": "{{sample.output_text}}",
...         "reference": "{{item.answer}}", "operation": "eq"}
>>> run_grader(spec, "4", {"answer": "4"})["reward"]
1.0
>>> validate_grader({"type": "string_check", "name": "s", "input": "x"})
Traceback (most recent call last):
...
reinforge.errors.ConfigError: grader.operation: missing (required for string_check) (and 1 more)
"""

from __future__ import annotations

from reinforge.graders import registry


def validate_grader(spec: dict) -> dict:
    """``{"grader": spec}`` as OpenAI answers; raises ConfigError naming the first bad key."""
    registry.validate(spec, raise_errors=True)
    return {"grader": spec}


def run_grader(spec: dict, model_sample: str, item: dict | None) -> dict:
    """OpenAI's GraderRunResponse: reward, metadata (errors, scores, timing), sub_rewards."""
    return registry.run(spec, model_sample, item or {})
