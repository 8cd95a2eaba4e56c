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

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from reinforge.errors import ConfigError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base of every config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: ``source: key.path: message``."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the config class for allowed keys)"
        lines.append(f"{source}: {key}: {msg}")
    return "; ".join(lines)


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
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
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {part} is not a mapping")
        node[path[-1]] = value
    return data


def load_config(cls: type[C], path: str | Path | dict | None, overrides: list[str] | None = None) -> C:
    """Build ``cls`` from a YAML file (or dict), then apply ``key=value`` overrides."""
    if isinstance(path, dict):
        data, source = dict(path), "<config>"
    elif path is None:
        data, source = {}, "<defaults>"
    else:
        data, source = read_yaml(path), str(path)
    data = apply_overrides(data, overrides)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None
