"""``score_model`` and ``label_model``: a judge model reads templated messages and answers in JSON.

The judge is any OpenAI-compatible chat endpoint (the ``openai`` client; ``base_url``/``api_key`` from
the spec, else ``REINFORGE_GRADER_BASE_URL`` or ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``), or — when
``model`` is a local directory — a ``transformers`` model loaded once in this process.

* ``score_model``: the answer ``{"result": <number>}`` (a bare number is accepted too) is clipped to
  ``range`` (default ``[0, 1]``); ``pass_threshold`` sets ``metadata.passed``.
* ``label_model``: the answer ``{"result": "<label>"}`` (or the bare label) must be one of ``labels``;
  the reward is 1 when it is in ``passing_labels``, else 0.

Transient failures (connection, timeout, a hung judge after ``timeout_s``, 408/409/429/5xx) are
retried with exponential backoff and jitter, or after the judge's ``Retry-After`` when it sends one
(``graders/retries.py``); identical requests are answered from a cache; ``grade_batch`` runs up to
``concurrency`` requests at once. Failures are recorded zeros: ``model_grader_server_error`` (with details),
``model_grader_refusal_error`` and ``model_grader_parse_error``. Token usage is summed per model in
``grader.token_usage``.

reinforge extension keys: ``base_url``, ``api_key``, ``concurrency`` (8), ``max_retries`` (4),
``retry_backoff_s`` (0.5), ``timeout_s`` (60), ``cache`` (true), ``structured_output`` (true: send a
JSON-schema ``response_format``; set false for servers without it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

from reinforge.graders.base import Grade, Grader, error_grade
from reinforge.graders.local_judge import Completion, local_complete
from reinforge.graders.retries import retry_delay, transient
from reinforge.graders.templating import TemplateVariableError, compile_template

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens")
_CACHE: OrderedDict[str, Completion] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_INFLIGHT: dict[str, threading.Event] = {}
CACHE_SIZE = 100_000


class ServerError(RuntimeError):
    """The judge could not be reached or answered with an error (after retries)."""


# --- messages ---------------------------------------------------------------------------------------


def message_templates(messages: list) -> list[tuple[str, list]]:
    """Pre-compile OpenAI grader messages into ``(role, [Template | image part, ...])``.

    A message is ``{"role", "content"}`` (``"type": "message"`` optional) whose content is a string,
    one part (``{"type": "input_text", "text"}``, ``output_text``, ``input_image``) or a list of parts.
    """
    out = []
    for m in messages:
        content = m["content"]
        parts = content if isinstance(content, list) else [content]
        compiled: list = []
        for p in parts:
            if isinstance(p, str):
                compiled.append(compile_template(p))
            elif p.get("type") in ("input_text", "output_text", "text"):
                compiled.append(compile_template(p["text"]))
            elif p.get("type") == "input_image":
                compiled.append({"type": "image_url", "image_url": {"url": p.get("image_url", "")}})
            else:
                raise ValueError(f"unsupported content part type {p.get('type')!r}")
        out.append((m.get("role", "user"), compiled))
    return out


def render_messages(templates: list[tuple[str, list]], item: dict, sample: dict) -> list[dict]:
    """Chat-completions messages: text parts joined by newlines; images kept as ``image_url`` parts."""
    messages = []
    for role, parts in templates:
        texts = [p.render(item, sample) for p in parts if not isinstance(p, dict)]
        images = [p for p in parts if isinstance(p, dict)]
        if images:
            messages.append({"role": role, "content": [{"type": "text", "text": t} for t in texts] + images})
        else:
            messages.append({"role": role, "content": "\n".join(texts)})
    return messages


# --- parsing the judge's answer ---------------------------------------------------------------------


def parse_result(content: str) -> Any:
    """The ``result`` of a JSON answer (code fences and surrounding prose tolerated), or the bare text.

    >>> parse_result('```json\\n{"steps": [], "result": 0.7}\\n```')
    0.7
    >>> parse_result("0.25")
    0.25
    """
    text = content.strip()
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    for candidate in (text, *re.findall(r"\{.*\}", text, re.S)):
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict) and "result" in obj:
            return obj["result"]
        if isinstance(obj, int | float | str) and not isinstance(obj, bool):
            return obj
    return text


def parse_score(content: str) -> float:
    value = parse_result(content)
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    score = float(value)  # ValueError for text that is not a number
    if score != score or score in (float("inf"), float("-inf")):
        raise ValueError(f"non-finite score {score}")
    return score


def parse_label(content: str, labels: Sequence[str]) -> str:
    value = parse_result(content)
    value = value.strip().strip('"').strip() if isinstance(value, str) else value
    for label in labels:
        if value == label:
            return label
    for label in labels:  # case-insensitive second chance
        if isinstance(value, str) and value.casefold() == label.casefold():
            return label
    raise ValueError(f"answer {str(value)[:80]!r} is not one of {list(labels)}")


# --- backends ---------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _client(base_url: str | None, api_key: str | None, timeout_s: float):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key or "EMPTY", max_retries=0, timeout=timeout_s)


# --- the graders --------------------------------------------------------------------------------------


class ModelGrader(Grader):
    """Shared machinery; subclasses set ``kind``, ``response_schema`` and ``score``."""

    kind = "model"

    def __init__(self, spec: dict, concurrency: int | None = None):
        self.spec = spec
        self.name = spec.get("name", self.kind)
        self.model = spec["model"]
        self.templates = message_templates(spec["input"])
        self.params = dict(spec.get("sampling_params") or {})
        self.base_url = (
            spec.get("base_url")
            or os.environ.get("REINFORGE_GRADER_BASE_URL")
            or os.environ.get("OPENAI_BASE_URL")
        )
        self.api_key = spec.get("api_key") or os.environ.get("OPENAI_API_KEY")
        self.local = Path(str(self.model)).is_dir()
        self.concurrency = int(concurrency or spec.get("concurrency", 8))
        self.max_retries = int(spec.get("max_retries", 4))
        self.backoff_s = float(spec.get("retry_backoff_s", 0.5))
        self.timeout_s = float(spec.get("timeout_s", 60))
        self.use_cache = bool(spec.get("cache", True))
        self.structured = bool(spec.get("structured_output", True))
        self.pass_threshold = spec.get("pass_threshold")
        self.token_usage: dict[str, dict[str, int]] = {}
        self.requests = 0  # calls that reached the judge (cache hits excluded)
        self._lock = threading.Lock()

    # subclass hooks
    def response_schema(self) -> dict:
        raise NotImplementedError

    def score(self, content: str) -> tuple[float, dict]:
        raise NotImplementedError

    # requests
    def _api_params(self) -> dict:
        params = {k: v for k, v in self.params.items() if v is not None}
        if self.structured:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": f"{self.kind}_result",
                    "strict": True,
                    "schema": self.response_schema(),
                },
            }
        return params

    def _call(self, messages: list[dict]) -> Completion:
        if self.local:
            return local_complete(str(self.model), messages, self.params)
        params = self._api_params()
        client = _client(self.base_url, self.api_key, self.timeout_s)
        for attempt in range(self.max_retries + 1):
            try:
                resp = client.chat.completions.create(model=self.model, messages=messages, **params)
                break
            except Exception as e:
                if not transient(e) or attempt == self.max_retries:
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise ServerError(f"{type(e).__name__}: {e}"[:1000] + tries) from None
                time.sleep(retry_delay(e, attempt, self.backoff_s))
        msg = resp.choices[0].message
        usage = {}
        if resp.usage is not None:
            u = resp.usage
            details = getattr(u, "prompt_tokens_details", None)
            usage = {
                "prompt_tokens": u.prompt_tokens or 0,
                "completion_tokens": u.completion_tokens or 0,
                "total_tokens": u.total_tokens or 0,
                "cached_tokens": (getattr(details, "cached_tokens", 0) or 0) if details else 0,
            }
        return Completion(msg.content, getattr(msg, "refusal", None), usage, resp.model or str(self.model))

    def request(self, messages: list[dict]) -> tuple[Completion, bool]:
        """The judge's answer and whether it came from the cache (identical in-flight requests wait
        for the first one instead of asking the judge again)."""
        sent = self.params if self.local else self._api_params()  # all the judge sees: labels' enum too
        key = hashlib.sha256(
            json.dumps([self.base_url, str(self.model), messages, sent], sort_keys=True, default=str).encode()
        ).hexdigest()
        while self.use_cache:
            with _CACHE_LOCK:
                if key in _CACHE:
                    _CACHE.move_to_end(key)
                    return _CACHE[key], True
                waiting = _INFLIGHT.get(key)
                if waiting is None:
                    _INFLIGHT[key] = threading.Event()
                    break
            waiting.wait()
        try:
            completion = self._call(messages)
            with self._lock:
                self.requests += 1
                total = self.token_usage.setdefault(completion.model, dict.fromkeys(USAGE_KEYS, 0))
                for k in USAGE_KEYS:
                    total[k] += int(completion.usage.get(k, 0))
            if self.use_cache and completion.refusal is None:
                with _CACHE_LOCK:
                    _CACHE[key] = completion
                    while len(_CACHE) > CACHE_SIZE:
                        _CACHE.popitem(last=False)
            return completion, False
        finally:
            if self.use_cache:
                with _CACHE_LOCK:
                    event = _INFLIGHT.pop(key, None)
                if event is not None:
                    event.set()

    def grade(self, item: dict, sample: dict) -> Grade:
        try:
            messages = render_messages(self.templates, item, sample)
        except TemplateVariableError as e:
            return error_grade("invalid_variable_error", str(e))
        try:
            completion, cached = self.request(messages)
        except ServerError as e:
            return error_grade("model_grader_server_error", str(e))
        except Exception as e:  # a local model failing to load or generate
            return error_grade("model_grader_server_error", f"{type(e).__name__}: {e}"[:1000])
        meta: dict[str, Any] = {
            "token_usage": completion.usage,
            "sampled_model_name": completion.model,
            "cached": cached,
        }
        if completion.refusal:
            return error_grade("model_grader_refusal_error", completion.refusal[:500], **meta)
        if completion.content is None:
            return error_grade("model_grader_parse_error", "the judge returned no content", **meta)
        try:
            reward, extra = self.score(completion.content)
        except (ValueError, TypeError) as e:
            return error_grade(
                "model_grader_parse_error", f"{e}; answer: {completion.content[:200]!r}", **meta
            )
        meta.update(extra)
        if self.pass_threshold is not None:
            meta["passed"] = reward >= self.pass_threshold
        return Grade(reward, meta)

    def grade_batch(self, pairs: Sequence[tuple[dict, dict]]) -> list[Grade]:
        if len(pairs) <= 1 or self.concurrency <= 1 or self.local:
            return [self.grade(i, s) for i, s in pairs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(pairs))) as ex:
            return list(ex.map(lambda p: self.grade(*p), pairs))


class ScoreModelGrader(ModelGrader):
    kind = "score_model"

    def __init__(self, spec: dict, concurrency: int | None = None):
        super().__init__(spec, concurrency)
        lo, hi = spec.get("range") or [0.0, 1.0]
        self.range = (float(lo), float(hi))

    def response_schema(self) -> dict:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["steps", "result"],
            "properties": {
                "steps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["description", "conclusion"],
                        "properties": {"description": {"type": "string"}, "conclusion": {"type": "string"}},
                    },
                },
                "result": {"type": "number"},
            },
        }

    def score(self, content: str) -> tuple[float, dict]:
        raw = parse_score(content)
        lo, hi = self.range
        return min(max(raw, lo), hi), {"raw_score": raw}


class LabelModelGrader(ModelGrader):
    kind = "label_model"

    def __init__(self, spec: dict, concurrency: int | None = None):
        super().__init__(spec, concurrency)
        self.labels = list(spec["labels"])
        self.passing = set(spec["passing_labels"])

    def response_schema(self) -> dict:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["result"],
            "properties": {"result": {"type": "string", "enum": self.labels}},
        }

    def score(self, content: str) -> tuple[float, dict]:
        label = parse_label(content, self.labels)
        return (1.0 if label in self.passing else 0.0), {"label": label}
