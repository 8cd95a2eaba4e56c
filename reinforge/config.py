"""Config machinery shared by every YAML config: strict pydantic models, loading, ``--set`` overrides.

Each algorithm keeps its own config class beside its trainer (``GRPOConfig`` in ``train/grpo.py``,
``TuneConfig`` in ``tune/``...); they all derive from :class:`Config`, so unknown keys are errors
everywhere, and every error names the file and the key.

>>> class Demo(Config):
...     lr: float = 1e-3
...     steps: int = 10
>>> load_config(Demo, None, ["steps=20"]).steps
20
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from reinforge.errors import ConfigError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base of every config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
    # dict fields that hold another config class's keys (RLHF's ``ppo:``): listed and checked as that class
    sections: ClassVar[dict[str, type[Config]]] = {}
    # keys of those sections the owner sets itself (``ppo.output_dir``): refused there, left out of the list
    section_fixed: ClassVar[dict[str, tuple[str, ...]]] = {}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


# command -> "module:Class": the class `reinforge config COMMAND` lists and unknown-key errors point to
CONFIG_CLASSES = {
    "rft": "reinforge.train.grpo:GRPOConfig",
    "sft": "reinforge.train.sft_trainer:SFTConfig",
    "rm": "reinforge.train.reward:RMConfig",
    "ppo": "reinforge.train.ppo:PPOConfig",
    "dpo": "reinforge.train.dpo:DPOConfig",
    "rlhf": "reinforge.train.rlhf:RLHFConfig",
    "tune": "reinforge.tune.schema:TuneConfig",
}


class SectionError(ValueError):
    """A section (a dict of another config class's keys) is invalid; its problems keep their key paths.

    Raised inside a validator, so the outer ``ValidationError`` carries it and
    :func:`format_validation_error` reports ``section.key`` for each problem.
    """

    def __init__(self, name: str, err: ValidationError):
        self.errors = [{**e, "loc": (name, *e["loc"])} for e in _flat_errors(err.errors())]
        super().__init__("; ".join(f"{_key(e['loc'])}: {_message(e, None)}" for e in self.errors))


def validate_section(cls: type[C], data: dict[str, Any], name: str) -> C:
    """``cls.model_validate(data)``, its errors reported under ``name.``; for validators of sections."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise SectionError(name, e) from None


def _flat_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in errors:
        inner = (e.get("ctx") or {}).get("error")
        if isinstance(inner, SectionError):
            out += [{**sub, "loc": (*e["loc"], *sub["loc"])} for sub in inner.errors]
        else:
            out.append(dict(e))
    return out


def _key(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def config_class_at(cls: type[BaseModel], path: list[str] | tuple) -> type[BaseModel] | None:
    """The config class holding the keys under ``path`` (``["lora"]`` -> LoraSettings), or None."""
    for part in path:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(str(part))
        if field is None:
            return None
        sub = getattr(cls, "sections", {}).get(str(part)) or model_class_in(field.annotation)
        if sub is None:
            return None
        cls = sub
    return cls


def model_class_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class in ``X``, ``X | None`` or ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_class_in(arg)
        if found is not None:
            return found
    return None


def command_of(cls: type) -> str | None:
    """The ``reinforge config`` command listing ``cls``'s keys, if it has one."""
    name = f"{cls.__module__}:{cls.__qualname__}"
    return next((cmd for cmd, target in CONFIG_CLASSES.items() if target == name), None)


def _message(e: dict, cls: type[BaseModel] | None, show_value: bool = True) -> str:
    """The rule broken (and the fix where it is clear) for one pydantic error."""
    loc = tuple(e["loc"])
    if e["type"] == "extra_forbidden":
        parent = config_class_at(cls, loc[:-1]) if cls is not None else None
        close = get_close_matches(str(loc[-1]), list(parent.model_fields), n=3) if parent else []
        return "unknown key" + (f"; did you mean {' or '.join(close)}?" if close else "")
    if e["type"] == "missing":
        return "required key missing; add it"
    if e["type"] in ("value_error", "assertion_error") and (e.get("ctx") or {}).get("error"):
        return str(e["ctx"]["error"])
    value = e.get("input")
    shown = show_value and isinstance(value, str | int | float | bool) and len(repr(value)) < 60
    got = f" (got {value!r})" if shown else ""
    return e["msg"] + got


def format_validation_error(
    err: ValidationError,
    source: str,
    cls: type[BaseModel] | None = None,
    overrides: list[str] | None = None,
) -> str:
    """One problem per ``;``: ``source: key.path: rule``, where source is the ``--set k=v`` that set
    the key, else the file; unknown keys get the closest names (``cls`` is the config class)."""
    set_paths = [(parse_override(text)[0], text) for text in overrides or []]
    problems, errors = [], _flat_errors(err.errors())
    for e in errors:
        loc = tuple(str(p) for p in e["loc"])
        where = next(
            (
                f"--set {text}"
                for path, text in reversed(set_paths)
                if loc and tuple(path) == loc[: len(path)]
            ),
            source,
        )
        key = f"{_key(e['loc'])}: " if e["loc"] else ""
        problems.append(f"{where}: {key}{_message(e, cls, show_value=where == source)}")
    cmd = command_of(cls) if cls is not None else None
    unknown = any(e["type"] == "extra_forbidden" for e in errors)
    return "; ".join(problems) + (f" (every key: `reinforge config {cmd}`)" if unknown and cmd else "")


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    if not p.is_file():
        raise ConfigError(f"{p}: not a file (a directory?); give a YAML config file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping of keys to values")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=3`` -> (["a", "b"], 3); the value is parsed as YAML so numbers and lists work."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    for text in overrides or []:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            if node.get(part) is None:  # absent or null (``lora: null``): start the section
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {part} is not a mapping")
        node[path[-1]] = value
    return data


def load_config(
    cls: type[C], path: str | Path | dict | None, overrides: list[str] | None = None, source: str = "<config>"
) -> C:
    """Build ``cls`` from a YAML file (or a dict, named ``source`` in errors), then apply ``key=value`` overrides."""
    if isinstance(path, dict):
        data = dict(path)
    elif path is None:
        data, source = {}, "<defaults>"
    else:
        data, source = read_yaml(path), str(path)
    data = apply_overrides(data, overrides)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, cls, overrides)) from None
