"""``{{ namespace.path }}`` templates over the ``item`` and ``sample`` namespaces, compiled once.

A path is a namespace (``item`` or ``sample``) followed by ``.key``, ``[0]`` or ``["key"]`` steps:
``{{item.ground_truth.date}}``, ``{{ sample.output_tools[0].function.arguments }}``. Strings render
as they are; every other value renders as JSON (``1``, ``true``, ``{"a": 1}``). A path that does not
resolve raises :class:`TemplateVariableError`, which graders turn into ``invalid_variable_error``.

>>> t = compile_template("{{ item.answer }} vs {{sample.output_tools[0].function.name}}")
>>> t.render({"answer": 4}, {"output_tools": [{"function": {"name": "add"}}]})
'4 vs add'
>>> t.render({}, {})
Traceback (most recent call last):
...
reinforge.graders.templating.TemplateVariableError: item.answer: key 'answer' not found
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from reinforge.graders.base import SAMPLE_KEYS, GraderError

NAMESPACES = ("item", "sample")
_VAR = re.compile(r"\{\{(.*?)\}\}", re.S)
_STEP = re.compile(
    r"""\.\s*([A-Za-z_][\w-]*|\d+)|\[\s*(-?\d+)\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*'([^']*)'\s*\]"""
)
_HEAD = re.compile(r"\s*([A-Za-z_]\w*)")

Step = str | int  # a dict key or a list index


class TemplateError(ValueError):
    """The template itself is malformed (found at validation time)."""


class TemplateVariableError(LookupError):
    """A variable did not resolve for this (item, sample); graders report ``invalid_variable_error``."""


@dataclass(frozen=True)
class Variable:
    """One ``{{ ... }}`` reference: namespace plus steps, e.g. ``("sample", ("output_tools", 0))``."""

    namespace: str
    steps: tuple[Step, ...]
    text: str  # the path as written, for error messages


def parse_variable(text: str) -> Variable:
    """Parse the inside of ``{{ ... }}`` into a :class:`Variable`; raise :class:`TemplateError`."""
    head = _HEAD.match(text)
    if not head:
        raise TemplateError(f"'{{{{{text}}}}}': expected item.<path> or sample.<path>")
    namespace = head.group(1)
    if namespace not in NAMESPACES:
        raise TemplateError(f"'{{{{{text}}}}}': unknown namespace '{namespace}' (use item or sample)")
    steps: list[Step] = []
    pos = head.end()
    rest = text.rstrip()
    while pos < len(rest):
        m = _STEP.match(rest, pos)
        if not m:
            raise TemplateError(f"'{{{{{text}}}}}': cannot parse the path at '{rest[pos:]}'")
        key, index, dq, sq = m.groups()
        steps.append(
            int(index) if index is not None else (key if key is not None else (dq if dq is not None else sq))
        )
        pos = m.end()
    return Variable(namespace, tuple(steps), text.strip())


def resolve(var: Variable, item: Any, sample: Any) -> Any:
    """Walk ``var``'s steps through the namespace value; raise :class:`TemplateVariableError`."""
    value = item if var.namespace == "item" else sample
    for step in var.steps:
        if isinstance(step, int):
            if not isinstance(value, list | tuple) or not -len(value) <= step < len(value):
                raise TemplateVariableError(f"{var.text}: index [{step}] out of range")
            value = value[step]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        elif (
            isinstance(value, list | tuple)
            and step.lstrip("-").isdigit()
            and -len(value) <= int(step) < len(value)
        ):
            value = value[int(step)]  # JSON-path style ``a.0.b``
        else:
            raise TemplateVariableError(f"{var.text}: key '{step}' not found")
    return value


def to_text(value: Any) -> str:
    """How a resolved value renders: strings verbatim, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


class Template:
    """A compiled template: literal text and variables, alternating. Rendering is a join."""

    def __init__(self, text: str):
        self.text = text
        self.parts: list[str | Variable] = []
        pos = 0
        for m in _VAR.finditer(text):
            if m.start() > pos:
                self.parts.append(text[pos : m.start()])
            self.parts.append(parse_variable(m.group(1)))
            pos = m.end()
        if pos < len(text):
            self.parts.append(text[pos:])
        self.variables = [p for p in self.parts if isinstance(p, Variable)]
        # fast path for the common ``"{{sample.output_text}}"``: one variable whose steps are all keys
        self.single: Variable | None = self.variables[0] if len(self.parts) == 1 and self.variables else None
        if self.single is not None and all(isinstance(s, str) for s in self.single.steps):
            self.render = self._render_keys  # type: ignore[method-assign]

    def _render_keys(self, item: Any, sample: Any) -> str:
        var = self.single
        assert var is not None  # chosen in __init__ only for a single variable
        value = item if var.namespace == "item" else sample
        try:
            for step in var.steps:
                value = value[step]
        except (KeyError, TypeError, IndexError):
            value = resolve(var, item, sample)  # raises the precise error, or handles ``a.0.b``
        if isinstance(value, str):
            return value
        return to_text(value)

    def render(self, item: Any, sample: Any) -> str:
        if self.single is not None:
            return to_text(resolve(self.single, item, sample))
        if not self.variables:
            return self.text
        return "".join(p if isinstance(p, str) else to_text(resolve(p, item, sample)) for p in self.parts)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


_CACHE: dict[str, Template] = {}


def compile_template(text: str) -> Template:
    """Compile (and cache) a template; raise :class:`TemplateError` when it is malformed."""
    if not isinstance(text, str):
        raise TemplateError(f"template must be a string, got {type(text).__name__}")
    t = _CACHE.get(text)
    if t is None:
        t = _CACHE[text] = Template(text)
    return t


def render(text: str, item: Any, sample: Any) -> str:
    """Compile-and-render in one call (compiled templates are cached)."""
    return compile_template(text).render(item, sample)


def template_errors(text: Any, where: str) -> list[str]:
    """Validation messages for one template field (empty when it is fine)."""
    try:
        compile_template(text)
    except TemplateError as e:
        return [f"{where}: {e}"]
    return []


# ------------------------------------------------------------------------------- checks against the rows

TEMPLATE_KEYS = ("input", "reference", "prompt")  # where grader specs hold templates (messages included)


def spec_templates(spec: Any, where: str = "grader") -> list[tuple[str, str]]:
    """Every template in a grader spec as ``(location, text)``, sub-graders of ``multi`` included.

    >>> spec_templates({"type": "score_model", "input": [{"role": "user", "content": "{{item.q}}"}]})
    [('grader.input[0].content', '{{item.q}}')]
    """
    if not isinstance(spec, dict):
        return []
    out = [t for key in TEMPLATE_KEYS if key in spec for t in _template_strings(spec[key], f"{where}.{key}")]
    subs = spec.get("graders") if spec.get("type") == "multi" else None
    if isinstance(subs, list):
        subs = {
            g.get("name", f"grader_{i}") if isinstance(g, dict) else str(i): g for i, g in enumerate(subs)
        }
    for name, sub in (subs or {}).items():
        out += spec_templates(sub, f"{where}.graders.{name}")
    return out


def _template_strings(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)] if "{{" in value else []
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _template_strings(v, f"{where}[{i}]")]
    if isinstance(value, dict):  # a message, or a content part
        return [
            t for k in ("content", "text") if k in value for t in _template_strings(value[k], f"{where}.{k}")
        ]
    return []


def row_errors(spec: Any, item: dict) -> list[str]:
    """Template variables of ``spec`` that cannot resolve for the row ``item`` with any sample: a missing
    ``item`` field, or a ``sample`` key that no sample has (``output_text``, ``output_json``, ...).

    >>> spec = {"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.answr}}"}
    >>> row_errors(spec, {"answer": "4"})
    ["grader.reference: '{{item.answr}}': the row has no field 'answr' (its fields: answer)"]
    """
    errs = []
    for where, text in spec_templates(spec):
        for var in compile_template(text).variables:
            if var.namespace == "item":
                try:
                    resolve(var, item, None)
                except TemplateVariableError as e:
                    top = var.steps[0] if var.steps else None
                    why = (
                        f"the row has no field '{top}' (its fields: {', '.join(sorted(item))})"
                        if isinstance(top, str) and top not in item
                        else str(e)
                    )
                    errs.append(f"{where}: '{{{{{var.text}}}}}': {why}")
            elif var.steps and var.steps[0] not in SAMPLE_KEYS:
                errs.append(
                    f"{where}: '{{{{{var.text}}}}}': a sample has no '{var.steps[0]}' "
                    f"(its keys: {', '.join(SAMPLE_KEYS)})"
                )
    return errs


def check_rows(spec: Any, rows: list[tuple[str, dict]], grader_name: str | None = None) -> None:
    """Refuse, before any work, a grader whose templates cannot resolve on these ``(where, row)`` pairs
    (``where`` names the row, ``file:line`` when known); raises :class:`~reinforge.graders.base.GraderError`.
    """
    name = grader_name or (spec.get("name") if isinstance(spec, dict) else None) or "grader"
    for where, row in rows:
        errs = row_errors(spec, row)
        if errs:
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            raise GraderError(
                f"{where}: grader '{name}' {errs[0]}{more}; fix the template or add the field to the rows",
                "invalid_variable_error",
                errs[0],
            )
