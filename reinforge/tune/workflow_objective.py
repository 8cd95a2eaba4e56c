"""``workflow``: a multi-step LLM pipeline declared in YAML, tuned per step.

A workflow names its ``start`` step and its ``steps``. An ``llm`` step sends its prompt (``{input}`` is
the row's last user message, ``{<step>}`` an earlier step's output) and goes to ``next`` (none: the
end); with ``schema`` (a name in ``schemas``) it asks for JSON of that schema (``response_format``) and
the grader can read ``sample.output_json``. A ``route`` step picks one of its ``routes`` (label -> step)
by its ``method``: ``keywords`` (the first label one of whose words the input holds), ``llm`` (the
model names the label from the ``descriptions``) or ``embedding`` (MiniLM similarity of the input to
each description). Knobs, by dotted name: ``steps.<step>.prompt`` (Text), ``steps.<step>.schema``
(Choice of schema names), ``steps.<step>.method`` (Choice), ``temperature``.

>>> wf = Workflow.model_validate({"start": "a", "steps": {"a": {"prompt": "{input}", "next": "b"}}})
Traceback (most recent call last):
...
reinforge.errors.ConfigError: workflow.steps.a.next: 'b' is not a step (a); name one of them or drop next
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from reinforge.config import Config, read_yaml
from reinforge.data.rft import load_rft_rows
from reinforge.errors import ConfigError
from reinforge.models.chat import prompt_messages
from reinforge.tune.llm_client import LLMClient
from reinforge.tune.objectives import ExampleObjective, whole_batch_objective
from reinforge.tune.space import Choice, Space

METHODS = ("keywords", "llm", "embedding")


class Step(Config):
    kind: Literal["llm", "route"] = "llm"  # llm: call the model; route: choose the next step
    prompt: str | None = None  # llm: the prompt, with {input} and {<earlier step>}
    next: str | None = None  # llm: the step after this one (none: the workflow ends here)
    output_schema: str | None = None  # llm: structured output, a name in the workflow's schemas
    routes: dict[str, str] = {}  # route: label -> the step it leads to
    method: Literal["keywords", "llm", "embedding"] = "keywords"  # route: how the label is chosen
    keywords: dict[str, list[str]] = {}  # route by keywords: label -> words
    descriptions: dict[str, str] = {}  # route by llm or embedding: label -> what the label means


class Workflow(Config):
    start: str  # the first step
    steps: dict[str, Step]  # name -> step
    schemas: dict[str, dict] = {}  # name -> JSON schema, for steps' structured output

    @model_validator(mode="after")
    def _check(self) -> Workflow:
        names = ", ".join(self.steps)

        def need(target: str | None, where: str, fix: str) -> None:
            if target is not None and target not in self.steps:
                raise ConfigError(f"workflow.{where}: {target!r} is not a step ({names}); {fix}")

        need(self.start, "start", "name one of them")
        for name, s in self.steps.items():
            need(s.next, f"steps.{name}.next", "name one of them or drop next")
            for label, target in s.routes.items():
                need(target, f"steps.{name}.routes.{label}", "route to one of them")
            if s.kind == "route" and not s.routes:
                raise ConfigError(f"workflow.steps.{name}.routes: a route step needs {{label: step}} routes")
            if s.kind == "llm" and not s.prompt:
                raise ConfigError(f"workflow.steps.{name}.prompt: an llm step needs a prompt")
            if s.output_schema and s.output_schema not in self.schemas:
                raise ConfigError(
                    f"workflow.steps.{name}.output_schema: {s.output_schema!r} is not in schemas "
                    f"({', '.join(self.schemas) or 'none'}); define it there"
                )
        return self


class WorkflowPipeline:
    """``pipeline(params, rows)``: run the workflow on each row (at most the client's concurrency at once)."""

    def __init__(self, client: LLMClient, workflow: Workflow):
        self.client, self.wf = client, workflow
        self._embed: Any = None

    def fingerprint(self) -> dict:
        return {"client": self.client.fingerprint(), "workflow": self.wf.model_dump()}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_embed": None}

    def __call__(self, params: dict, rows: list[dict]) -> list[dict]:
        return self.client.map(lambda row: self.run(params, row), rows)

    def run(self, params: dict, row: dict) -> dict[str, Any]:
        text = next((m["content"] for m in reversed(prompt_messages(row)) if m["role"] == "user"), "")
        tuned = params.get("steps") or {}
        outputs: dict[str, str] = {"input": str(text)}
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "model_calls": 0, "latency_s": 0.0}
        name: str | None = self.wf.start
        last, path = "", list[str]()
        while name is not None and len(path) < 2 * len(self.wf.steps):  # a cycle ends too
            step, knobs = self.wf.steps[name], tuned.get(name) or {}
            path.append(name)
            if step.kind == "route":
                label = self.route(step, knobs.get("method", step.method), outputs["input"], params, usage)
                outputs[name], name = label, step.routes[label]
                continue
            last = outputs[name] = self.call(step, knobs, outputs, params, usage)
            name = step.next
        return {"output_text": last, "steps_run": len(path), **usage}

    def call(self, step: Step, knobs: dict, outputs: dict, params: dict, usage: dict) -> str:
        prompt = knobs.get("prompt") or step.prompt or ""
        for key, value in outputs.items():
            prompt = prompt.replace("{" + key + "}", value)
        output_schema = knobs.get("output_schema", step.output_schema)
        options: dict[str, Any] = {"temperature": float(params.get("temperature", 0.0))}
        if output_schema:
            schema = self.wf.schemas[output_schema]
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": output_schema, "schema": schema},
            }
            prompt += f"\nReply with JSON only, matching this schema: {json.dumps(schema)}"
        reply = self.client.chat([{"role": "user", "content": prompt}], **options)
        account(usage, reply)
        return reply.texts[0]

    def route(self, step: Step, method: str, text: str, params: dict, usage: dict) -> str:
        labels = list(step.routes)
        if method == "keywords":
            low = text.lower()
            return next(
                (lb for lb in labels if any(w.lower() in low for w in step.keywords.get(lb, []))), labels[0]
            )
        described = {lb: step.descriptions.get(lb, lb) for lb in labels}
        if method == "llm":
            menu = "\n".join(f"- {lb}: {d}" for lb, d in described.items())
            prompt = f"Classify the input into one label.\nLabels:\n{menu}\nInput: {text}\nReply with the label only."
            reply = self.client.chat([{"role": "user", "content": prompt}], temperature=0.0, max_tokens=16)
            account(usage, reply)
            said = reply.texts[0].strip().lower()
            return next((lb for lb in labels if lb.lower() in said), labels[0])
        if self._embed is None:
            from reinforge.tune.rag import Embedder  # MiniLM, offline

            self._embed = Embedder()
        sims = self._embed([text]) @ self._embed(list(described.values())).T  # (1, L)
        return labels[int(np.argmax(sims[0]))]


def account(usage: dict, reply: Any) -> None:
    usage["prompt_tokens"] += reply.prompt_tokens
    usage["completion_tokens"] += reply.completion_tokens
    usage["model_calls"] += 0 if reply.cached else 1
    usage["latency_s"] += reply.latency_s


def load_workflow(spec: dict | str, base_dir: Path) -> Workflow:
    """The workflow inline, or from its YAML file (then an error names the file first)."""
    if not isinstance(spec, str):
        return Workflow.model_validate(spec)
    p = Path(spec) if Path(spec).is_absolute() else base_dir / spec
    try:
        return Workflow.model_validate(read_yaml(p))
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def check_space(space: Space, wf: Workflow) -> None:
    """``steps.<step>.<knob>`` names a step of the workflow and a knob it has."""
    for name, p in space.items():
        parts = name.split(".")
        if parts[0] != "steps":
            continue
        if len(parts) != 3 or parts[1] not in wf.steps:
            raise ConfigError(
                f"space.{name}: write steps.<step>.<knob> with a step of the workflow ({', '.join(wf.steps)})"
            )
        knob = parts[2]
        if knob == "method" and isinstance(p, Choice) and set(p.values) - set(METHODS):
            raise ConfigError(f"space.{name}: methods are {', '.join(METHODS)}")
        if knob == "output_schema" and isinstance(p, Choice):
            unknown = [v for v in p.values if v is not None and v not in wf.schemas]
            if unknown:
                raise ConfigError(f"space.{name}: {unknown} not in the workflow's schemas; define them there")


def workflow_objective(
    client: LLMClient,
    data: str | Path,
    grader: dict | str | Path,
    workflow: dict | str,
    space: Space,
    base_dir: Path = Path("."),
    cache: Any = None,
    prices: tuple[float, float] = (0.0, 0.0),
) -> ExampleObjective:
    """Grade the workflow on the rows of ``data`` with ``grader``, its knobs checked against ``space``."""
    wf = load_workflow(workflow, base_dir)
    check_space(space, wf)
    rows = load_rft_rows(data)
    return whole_batch_objective(
        WorkflowPipeline(client, wf), rows, grader, f"workflow:{Path(data).name}", cache, prices
    )
