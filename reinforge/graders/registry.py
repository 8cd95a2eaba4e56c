"""Build, validate and run graders from OpenAI's grader JSON (plus reinforge's extension keys).

>>> spec = {"type": "string_check", "name": "s", "input": "{{sample.output_text}}",
...         "reference": "{{item.label}}", "operation": "eq"}
>>> validate(spec)
[]
>>> validate({"type": "multi", "graders": {"a": spec}, "calculate_output": "a +"})[0]
"grader.calculate_output: formula_parse_error: unexpected end of formula after 'a +'"
>>> out = run(spec, "yes", {"label": "yes"})
>>> out["reward"], out["metadata"]["errors"]["invalid_variable_error"]
(1.0, False)
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

from reinforge.errors import ConfigError, ReinforgeError
from reinforge.graders.base import ERROR_DETAILS, ERROR_FLAGS, Grade, Grader, make_sample
from reinforge.graders.templating import template_errors

COMMON = {"type", "name", "pass_threshold"}
MODEL_EXT = {
    "base_url",
    "api_key",
    "concurrency",
    "max_retries",
    "retry_backoff_s",
    "timeout_s",
    "cache",
    "structured_output",
}
# type -> (required keys, optional keys)
KEYS: dict[str, tuple[set[str], set[str]]] = {
    "string_check": ({"input", "reference", "operation"}, set()),
    "text_similarity": (
        {"input", "reference", "evaluation_metric"},
        {"embedding_model", "base_url", "api_key"},
    ),
    "python": ({"source"}, {"image_tag", "limits"}),
    "score_model": ({"input", "model"}, {"range", "sampling_params"} | MODEL_EXT),
    "label_model": ({"input", "model", "labels", "passing_labels"}, {"sampling_params"} | MODEL_EXT),
    "multi": ({"graders", "calculate_output"}, set()),
    "reward_model": ({"model"}, {"input", "prompt", "device", "calibration"}),
}
REWARD_MODEL_CLASS = "reinforge.graders.reward_model:RewardModelGrader"


def load_spec(spec: dict | str | Path) -> dict:
    """A spec dict from a dict, a JSON string, or a .json/.yaml/.yml path."""
    if isinstance(spec, dict):
        return spec
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        try:
            return json.loads(spec)
        except json.JSONDecodeError as e:
            raise ConfigError(f"grader JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    p = Path(spec)
    if not p.exists():
        raise ConfigError(f"{p}: grader file not found")
    if p.suffix in (".yaml", ".yml"):
        from reinforge.config import read_yaml

        return read_yaml(p)
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a grader must be a JSON object with a 'type'")
    return data


def multi_graders(spec: dict) -> dict[str, dict]:
    """``graders`` as a name -> spec dict (a list is keyed by each grader's ``name``)."""
    graders = spec.get("graders")
    if isinstance(graders, list):
        return {
            g.get("name", f"grader_{i}") if isinstance(g, dict) else f"grader_{i}": g
            for i, g in enumerate(graders)
        }
    return graders if isinstance(graders, dict) else {}


def _errors(spec: Any, where: str) -> list[str]:
    if not isinstance(spec, dict):
        return [f"{where}: must be an object with a 'type'"]
    kind = spec.get("type")
    if kind not in KEYS:
        return [f"{where}.type: {kind!r} is not a grader type; use one of {', '.join(KEYS)}"]
    required, optional = KEYS[kind]
    errs = [f"{where}.{k}: missing (required for {kind})" for k in sorted(required - spec.keys())]
    errs += [
        f"{where}.{k}: unknown key for {kind}; known: {', '.join(sorted(required | optional | COMMON))}"
        for k in sorted(spec.keys() - required - optional - COMMON)
    ]
    if errs:
        return errs
    pt = spec.get("pass_threshold")
    if pt is not None and (isinstance(pt, bool) or not isinstance(pt, int | float)):
        errs.append(f"{where}.pass_threshold: must be a number")
    if kind in ("string_check", "text_similarity"):
        errs += template_errors(spec["input"], f"{where}.input") + template_errors(
            spec["reference"], f"{where}.reference"
        )
    if kind == "string_check" and spec["operation"] not in ("eq", "ne", "like", "ilike"):
        errs.append(f"{where}.operation: {spec['operation']!r}; use eq, ne, like or ilike")
    if kind == "text_similarity":
        from reinforge.graders.text_similarity import METRICS

        if spec["evaluation_metric"] not in METRICS:
            errs.append(
                f"{where}.evaluation_metric: {spec['evaluation_metric']!r}; use one of {', '.join(METRICS)}"
            )
    if kind == "python":
        from reinforge.graders.python_grader import LIMIT_KEYS, sandbox_errors, source_errors

        errs += source_errors(spec["source"], f"{where}.source") + sandbox_errors(f"{where}.type")
        limits = spec.get("limits") or {}
        if not isinstance(limits, dict):
            errs.append(f"{where}.limits: must be an object")
        else:
            for k, v in limits.items():
                if k not in LIMIT_KEYS:
                    errs.append(f"{where}.limits.{k}: unknown; known: {', '.join(LIMIT_KEYS)}")
                elif isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                    errs.append(f"{where}.limits.{k}: must be a positive number, got {v!r}")
    if kind in ("score_model", "label_model"):
        errs += _model_errors(spec, where)
    if kind == "multi":
        errs += _multi_errors(spec, where)
    if kind == "reward_model" and "input" in spec:
        errs += template_errors(spec["input"], f"{where}.input")
    return errs


def _model_errors(spec: dict, where: str) -> list[str]:
    from reinforge.graders.model_graders import message_templates

    errs = []
    messages = spec["input"]
    if not isinstance(messages, list) or not messages:
        return [f"{where}.input: must be a non-empty list of messages"]
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "content" not in m:
            errs.append(f"{where}.input[{i}]: a message needs 'role' and 'content'")
    if not errs:
        try:
            message_templates(messages)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            errs.append(f"{where}.input: {e}")
    if spec["type"] == "score_model" and "range" in spec:
        r = spec["range"]
        if not (
            isinstance(r, list) and len(r) == 2 and all(isinstance(x, int | float) for x in r) and r[0] < r[1]
        ):
            errs.append(f"{where}.range: must be [low, high] with low < high")
    if spec["type"] == "label_model":
        labels, passing = spec["labels"], spec["passing_labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            errs.append(f"{where}.labels: must be a non-empty list of strings")
        elif not isinstance(passing, list) or not set(passing) <= set(labels):
            errs.append(f"{where}.passing_labels: must be a list and a subset of labels {labels}")
    sp = spec.get("sampling_params")
    if sp is not None and not isinstance(sp, dict):
        errs.append(f"{where}.sampling_params: must be an object")
    return errs


def _multi_errors(spec: dict, where: str) -> list[str]:
    from reinforge.graders.formula import FormulaError, parse_formula, variables

    graders = spec["graders"]
    if not isinstance(graders, dict | list) or not graders:
        return [f"{where}.graders: must be a non-empty object of name -> grader"]
    subs = multi_graders(spec)
    errs = [e for name, g in subs.items() for e in _errors(g, f"{where}.graders.{name}")]
    try:
        unknown = variables(parse_formula(spec["calculate_output"])) - subs.keys()
        if unknown:
            errs.append(
                f"{where}.calculate_output: formula_parse_error: unknown variable(s) {sorted(unknown)}; "
                f"the graders are {sorted(subs)}"
            )
    except FormulaError as e:
        errs.append(f"{where}.calculate_output: formula_parse_error: {e}")
    return errs


def validate(spec: dict | str | Path, raise_errors: bool = False) -> list[str]:
    """Every problem in a grader spec, one readable line each ([] when valid).

    With ``raise_errors=True`` the first problem is raised as a :class:`ConfigError`.
    """
    errs = _errors(load_spec(spec), "grader")
    if errs and raise_errors:
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise ConfigError(errs[0] + more)
    return errs


def _build(spec: dict, workers: int | None) -> Grader:
    kind = spec["type"]
    if kind == "string_check":
        from reinforge.graders.string_check import StringCheckGrader

        return StringCheckGrader(spec)
    if kind == "text_similarity":
        from reinforge.graders.text_similarity import TextSimilarityGrader

        return TextSimilarityGrader(spec)
    if kind == "python":
        from reinforge.graders.python_grader import PythonGrader

        return PythonGrader(spec, workers=workers)
    if kind == "score_model":
        from reinforge.graders.model_graders import ScoreModelGrader

        return ScoreModelGrader(spec, concurrency=workers)
    if kind == "label_model":
        from reinforge.graders.model_graders import LabelModelGrader

        return LabelModelGrader(spec, concurrency=workers)
    if kind == "multi":
        from reinforge.graders.multi import MultiGrader

        subs = {name: _build(g, workers) for name, g in multi_graders(spec).items()}
        return MultiGrader(spec, subs)
    if kind == "reward_model":
        module, cls = REWARD_MODEL_CLASS.split(":")
        try:
            return getattr(importlib.import_module(module), cls)(spec)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            raise ReinforgeError(
                "grader.type 'reward_model': reinforge.graders.reward_model is not installed in this build; "
                "train one with `reinforge rm` on a build that has it"
            ) from None
    raise ConfigError(f"grader.type {kind!r}: no builder")


def build_grader(spec: dict | str | Path, workers: int | None = None) -> Grader:
    """Validate, then build. ``workers`` sizes the python sandbox pool and model-grader concurrency."""
    spec = load_spec(spec)
    validate(spec, raise_errors=True)
    grader = _build(spec, workers)
    grader.spec_type = spec["type"]  # for run()'s metadata
    return grader


def _token_usage(grader: Grader) -> dict[str, dict[str, int]]:
    usage = dict(getattr(grader, "token_usage", {}) or {})
    for sub in getattr(grader, "graders", {}).values():
        for model, u in _token_usage(sub).items():
            total = usage.setdefault(model, dict.fromkeys(u, 0))
            for k, v in u.items():
                total[k] = total.get(k, 0) + v
    return usage


def response(grade: Grade, spec: dict, seconds: float, token_usage: dict[str, dict[str, int]]) -> dict:
    """OpenAI's graders/run response for one :class:`Grade`: every error flag present, most false."""
    errors: dict[str, Any] = dict.fromkeys(ERROR_FLAGS, False)
    errors.update(dict.fromkeys(ERROR_DETAILS))
    errors.update({k: bool(v) for k, v in grade.errors.items()})
    for key in ERROR_DETAILS:
        if grade.metadata.get(key) is not None:
            errors[key] = str(grade.metadata[key])
    scores = {k: v for k, v in grade.metadata.items() if k not in ERROR_DETAILS and k not in ("token_usage",)}
    total = grade.metadata.get("token_usage") or None  # this sample's usage (also when it was cached)
    if token_usage:
        total = {
            k: sum(u.get(k, 0) for u in token_usage.values())
            for k in ("prompt_tokens", "total_tokens", "completion_tokens", "cached_tokens")
        }
    return {
        "reward": grade.reward,
        "metadata": {
            "name": spec.get("name", spec.get("type", "")),
            "type": spec.get("type", ""),
            "errors": errors,
            "execution_time": seconds,
            "scores": scores,
            "token_usage": total,
            "sampled_model_name": grade.metadata.get("sampled_model_name"),
        },
        "sub_rewards": dict(grade.sub_rewards),
        "model_grader_token_usage_per_model": token_usage,
    }


def run(spec: dict | str | Path, model_sample: str | dict, item: dict | None = None) -> dict:
    """Grade one sample like OpenAI's ``POST /fine_tuning/alpha/graders/run``.

    ``model_sample`` is the model's output text (``output_json`` is filled when it parses) or a
    ready ``sample`` dict. Invalid specs raise :class:`ConfigError`.
    """
    spec = load_spec(spec)
    t0 = time.perf_counter()
    grader = build_grader(spec)
    sample = make_sample(model_sample) if isinstance(model_sample, str) else model_sample
    grade = grader.grade(item or {}, sample)
    return response(grade, spec, time.perf_counter() - t0, _token_usage(grader))


def _checked(spec: Any) -> Any:
    """A config's inline grader, validated when the config is built (a path is checked when loaded)."""
    if isinstance(spec, dict):
        try:
            errs = _errors(spec, "grader")
        except (KeyError, TypeError, AttributeError) as e:  # a value of the wrong shape somewhere inside
            errs = [f"grader: malformed ({type(e).__name__}: {e})"]
        if errs:
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            raise ValueError(errs[0].removeprefix("grader.") + more)
    return spec


# A config field holding a grader: OpenAI grader JSON inline (checked with the config) or a file path
GraderSpec = Annotated[dict[str, Any] | str, AfterValidator(_checked)]
