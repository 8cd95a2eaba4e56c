"""Every config key with its type, default and meaning, read from the config classes themselves.

A key's meaning is its ``Field(description=...)`` or else the comment beside it in the class source:
the comment on its line, or the comment lines right above it (``# -- section`` headers excluded). So
each field is documented once, where it is declared, and ``reinforge config rft`` and
``docs/config.md`` are generated from that (a test keeps both complete and in sync).

>>> from pydantic import Field
>>> from reinforge.config import Config
>>> class Demo(Config):
...     lr: float = Field(1e-3, description="step size")
...     steps: int | None = None
>>> [(r.key, r.type, r.default, r.meaning) for r in config_rows(Demo)]
[('lr', 'float', '0.001', 'step size'), ('steps', 'int | null', 'null', '')]
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from reinforge.config import CONFIG_CLASSES, model_class_in
from reinforge.errors import ConfigError


@dataclass
class KeyDoc:
    key: str  # dotted path, as in YAML nesting and --set
    type: str
    default: str
    meaning: str


def config_class(command: str) -> type[BaseModel]:
    """The config class behind ``reinforge COMMAND`` (see ``CONFIG_CLASSES``)."""
    if command not in CONFIG_CLASSES:
        close = get_close_matches(command, list(CONFIG_CLASSES), n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"config {command!r}: no such command; {guess}(one of {', '.join(CONFIG_CLASSES)})")
    module, name = CONFIG_CLASSES[command].split(":")
    return getattr(importlib.import_module(module), name)


def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` from the source of ``cls`` and its config base classes (nearest first)."""
    out: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if issubclass(k, BaseModel) and k is not BaseModel]):
        out.update(_own_comments(klass))
    return out


def _own_comments(klass: type) -> dict[str, str]:
    try:
        src = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):  # no source (e.g. defined in a REPL): descriptions only
        return {}
    comments: dict[int, str] = {}  # line -> comment text
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    out = {}
    body = ast.parse(src).body[0]
    for node in getattr(body, "body", []):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line in comments and line not in code_lines and not comments[line].startswith("--"):
            above.insert(0, comments[line])
            line -= 1
        beside = [
            comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1) if n in comments
        ]
        text = " ".join(above + beside).strip()
        if text:
            out[node.target.id] = text
    return out


def type_name(annotation: Any) -> str:
    """``int | None`` -> ``int | null``; ``Literal["a", "b"]`` -> ``a|b``; a config class -> ``section``."""
    origin = get_origin(annotation)
    if origin is Literal:
        return "|".join(str(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(annotation))
    if origin is typing.Annotated:
        return type_name(get_args(annotation)[0])
    if annotation is type(None):
        return "null"
    if origin in (list, dict, tuple):
        args = get_args(annotation)
        if not args or Any in args:
            return origin.__name__
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(keys below)"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def config_rows(cls: type[BaseModel], prefix: str = "", skip: tuple[str, ...] = ()) -> list[KeyDoc]:
    """One row per key of ``cls``, then the keys of its sections (``lora.r``, ``ppo.steps``...)."""
    comments = field_comments(cls)
    rows = []
    for name, field in cls.model_fields.items():
        if name in skip:
            continue
        section = getattr(cls, "sections", {}).get(name) or model_class_in(field.annotation)
        meaning = field.description or comments.get(name, "")
        if section is not None and not meaning:
            meaning = f"{section.__name__} keys, listed as {prefix}{name}.KEY"
        rows.append(KeyDoc(prefix + name, type_name(field.annotation), default_text(field), meaning))
        if section is not None:
            fixed = getattr(cls, "section_fixed", {}).get(name, ())
            rows += config_rows(section, prefix=f"{prefix}{name}.", skip=fixed)
    return rows


def config_text(command: str) -> str:
    """What ``reinforge config COMMAND`` prints: aligned columns, one key per line."""
    cls = config_class(command)
    rows = config_rows(cls)
    head = [("key", "type", "default", "meaning")]
    cells = head + [(r.key, r.type, _short(r.default), r.meaning) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = [
        f"{cls.__name__} (`reinforge {command} CONFIG.yaml`): set keys in the YAML file or with "
        "--set key=value (nested: --set section.key=value).",
        "",
    ]
    lines += ["  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def config_markdown() -> str:
    """docs/config.md: a table per command."""
    out = [
        "# Config keys",
        "",
        "Every key of every config file, with its type, default and meaning. Generated from the config",
        "classes by `reinforge config --markdown > docs/config.md` (a test checks it is up to date); in a",
        "terminal, `reinforge config rft` prints the same list. Set keys in the YAML file, or on the",
        "command line with `--set key=value` (`--set lora.r=8` for a key inside a section).",
    ]
    for command in CONFIG_CLASSES:
        cls = config_class(command)
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        out += ["", f"## `reinforge {command}`: {cls.__name__}", ""] + ([doc, ""] if doc else [])
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for r in config_rows(cls):
            out.append(f"| `{r.key}` | {_md(r.type)} | {_md(r.default, code=True)} | {_md(r.meaning)} |")
    return "\n".join(out) + "\n"


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _md(text: str, code: bool = False) -> str:
    if code:  # a table cell: even inside `code` a | ends the cell
        return "`" + text.replace("|", "\\|") + "`" if text else text
    for ch in "\\|<*":  # markdown would read <task> as a tag and B*G as emphasis
        text = text.replace(ch, "\\" + ch)
    return text
