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

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from reinforge.errors import ReinforgeError
from reinforge.graders import registry
from reinforge.serve.context import Owner, rate_limited
from reinforge.serve.errors import APIError, documented

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", responses=documented(400, 401, 403, 413, 429))


def validate_grader(spec: dict) -> dict:
    """``{"grader": spec}`` as OpenAI answers; raises ConfigError naming the first bad key."""
    registry.validate(spec, raise_errors=True)
    return {"grader": spec}


def run_grader(spec: dict, model_sample: str, item: dict | None) -> dict:
    """OpenAI's GraderRunResponse: reward, metadata (errors, scores, timing), sub_rewards."""
    return registry.run(spec, model_sample, item or {})


class GraderRun(BaseModel):
    model_config = ConfigDict(strict=True)  # a number sent as a string is refused, as the schema says
    grader: dict[str, Any]
    model_sample: str
    item: dict[str, Any] | None = None
    reference_answer: Any = None


class GraderValidate(BaseModel):
    model_config = ConfigDict(strict=True)
    grader: dict[str, Any]


@router.post("/run", dependencies=[rate_limited("grader", "grader_runs_per_minute")])
async def grader_run(req: GraderRun, owner: Owner):
    item = dict(req.item or {})
    if req.reference_answer is not None:
        item.setdefault("reference_answer", req.reference_answer)
    try:
        return await run_in_threadpool(run_grader, req.grader, req.model_sample, item)
    except (ReinforgeError, ValueError, KeyError, TypeError) as e:
        raise APIError(400, f"grader: {e}", param="grader") from None


@router.post("/validate")
def grader_validate(req: GraderValidate, owner: Owner):
    try:
        return validate_grader(req.grader)
    except (ReinforgeError, ValueError, KeyError, TypeError) as e:
        raise APIError(400, f"grader: {e}", param="grader") from None
