"""Search spaces: ``Int``, ``Float``, ``Bool``, ``Choice``, ``Text`` and ``Subset`` parameters,
optionally conditional (the types are in ``params.py`` and ``subset.py``).

A space is an ordered mapping ``name -> Param``. A parameter with ``when={"other": value}`` is active
only when an *earlier* parameter has that value (or one of a list of values; for a Subset: holds one
of them, e.g. a tool's description only when the tool is chosen); inactive parameters are left out
of a configuration. Every parameter maps a unit number ``u`` in [0, 1) to a value (``from_unit``),
which the random, quasi-random and evolution samplers share, and names its Optuna distribution for
the Bayesian samplers.

Dotted names group parameters (``agents.planner.prompt``, ``steps.route.method``): the objective gets
them as nested dicts (:func:`nest`); storage, tables and ``best.yaml`` keep the dotted names.

>>> space = Space({"k": Int(1, 10), "retriever": Choice(["bm25", "hybrid"]),
...                "alpha": Float(0.0, 1.0, when={"retriever": "hybrid"})})
>>> space.active_names({"k": 3, "retriever": "bm25"})
['k', 'retriever']
>>> Space.from_dict({"lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}})["lr"].log
True
>>> nest({"agents.planner.prompt": "Plan.", "agents.planner.tools": ["calc"], "temperature": 0.2})
{'agents': {'planner': {'prompt': 'Plan.', 'tools': ['calc']}}, 'temperature': 0.2}
>>> nest({"sampling.temperature": 0.7})["sampling.temperature"]  # the dotted name still answers
0.7
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

from reinforge.errors import ConfigError
from reinforge.tune.params import Bool, Choice, Float, Int, Param, Text
from reinforge.tune.subset import Subset

__all__ = ["Param", "Int", "Float", "Bool", "Choice", "Text", "Subset", "Space", "param_from_dict", "nest"]


PARAM_TYPES: dict[str, type[Param]] = {
    "int": Int,
    "float": Float,
    "bool": Bool,
    "choice": Choice,
    "text": Text,
    "subset": Subset,
}


def param_from_dict(name: str, spec: Any) -> Param:
    """YAML form: ``{type: int, low: 1, high: 10}``; a bare list is a Choice."""
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, list):
        return Choice(spec)
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ConfigError(
            f"space.{name}: expected a mapping with 'type' (int|float|bool|choice|text|subset) or a list"
        )
    spec = dict(spec)
    kind = spec.pop("type")
    if kind not in PARAM_TYPES:
        raise ConfigError(f"space.{name}.type: {kind!r} is unknown; choose one of {sorted(PARAM_TYPES)}")
    if kind == "text" and "variants" in spec:
        spec["values"] = spec.pop("variants")
    try:
        return PARAM_TYPES[kind](**spec)
    except (TypeError, ConfigError) as e:
        raise ConfigError(f"space.{name}: {e}") from None


def checked_space(data: dict[str, Any]) -> dict[str, Any]:
    """A config's ``space`` checked as it loads, so the error names the file too (the loader adds it)."""
    from pydantic_core import PydanticCustomError

    try:
        Space.from_dict(data)
    except ConfigError as e:
        raise PydanticCustomError("space", str(e).removeprefix("space.")) from None
    return data


SpaceSpec = Annotated[dict[str, Any], AfterValidator(checked_space)]  # a config field holding a space


class Space(Mapping[str, Param]):
    """Ordered parameters; conditions may only name earlier parameters."""

    def __init__(self, params: Mapping[str, Param | Any]):
        self.params: dict[str, Param] = {n: param_from_dict(n, p) for n, p in params.items()}
        if not self.params:
            raise ConfigError("space: give at least one parameter")
        seen: list[str] = []
        for name, p in self.params.items():
            for other in p.when or {}:
                if other not in seen:
                    raise ConfigError(
                        f"space.{name}.when: {other!r} must be a parameter defined before {name!r}"
                    )
                q, want = self.params[other], (p.when or {})[other]
                if isinstance(q, Subset) and q.unknown(want if isinstance(want, list) else [want]):
                    raise ConfigError(
                        f"space.{name}.when.{other}: {want!r} is not among {other}'s options "
                        f"{q.options}; name one of those"
                    )
            seen.append(name)
        for name in self.params:  # a group name cannot also be a parameter: nest() would lose one
            for i in range(1, len(parts := name.split("."))):
                if ".".join(parts[:i]) in self.params:
                    raise ConfigError(
                        f"space.{name}: {'.'.join(parts[:i])!r} is a parameter, so it cannot also be a "
                        f"group of parameters; rename one of them"
                    )

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        return cls({n: param_from_dict(n, s) for n, s in data.items()})

    def to_dict(self) -> dict:
        return {n: p.to_dict() for n, p in self.params.items()}

    @property
    def conditional(self) -> bool:
        return any(p.when for p in self.params.values())

    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        cond = self.params[name].when or {}
        for other, want in cond.items():
            wants = want if isinstance(want, list) else [want]
            if other not in params:
                return False
            if isinstance(self.params[other], Subset):  # on when the subset holds any wanted option
                if not set(map(str, wants)) & set(map(str, params[other])):
                    return False
            elif params[other] not in wants:
                return False
        return True

    def active_names(self, params: Mapping[str, Any]) -> list[str]:
        return [n for n in self.params if self.is_active(n, params)]

    def from_units(self, units: Mapping[str, float]) -> dict[str, Any]:
        """A configuration from one unit number per parameter (inactive ones are skipped)."""
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if self.is_active(name, out):
                out[name] = p.from_unit(units[name])
        return out

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return self.from_units({n: rng.random() for n in self.params})

    def repair(self, params: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
        """Drop inactive parameters and sample missing active ones (after crossover or mutation)."""
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if self.is_active(name, out):
                out[name] = params[name] if name in params else p.sample(rng)
        return out

    def grid(self, points: int = 5) -> list[dict[str, Any]]:
        """Every combination of each parameter's grid, with conditions respected."""
        configs: list[dict[str, Any]] = [{}]
        for name, p in self.params.items():
            nxt: list[dict[str, Any]] = []
            for c in configs:
                if self.is_active(name, c):
                    nxt.extend({**c, name: v} for v in p.grid(points))
                else:
                    nxt.append(c)
            configs = nxt
        return configs

    def validate(self, params: Mapping[str, Any], source: str = "params") -> dict[str, Any]:
        """Check a hand-given configuration (ask/tell, enqueue): known names, values in the space (range,
        an integer's ``step``, a choice's values)."""
        for name in params:
            if name not in self.params:
                raise ConfigError(
                    f"{source}.{name}: not a parameter of this study ({', '.join(self.params)})"
                )
        for name in self.active_names(params):
            if name not in params:
                raise ConfigError(f"{source}: missing value for {name!r}")
            p, v = self.params[name], params[name]
            bad = (
                (isinstance(p, Int) and not p.contains(v))
                or (isinstance(p, Float) and not (p.low <= v <= p.high))
                or (isinstance(p, Choice) and not isinstance(p, Text) and v not in p.values)
            )
            if isinstance(p, Subset) and p.unknown(v):
                raise ConfigError(
                    f"{source}.{name}: {p.unknown(v)} not among the options {p.options}; "
                    f"choose from those or add them to space.{name}.options"
                )
            if isinstance(p, Subset) and not p.contains(v):
                raise ConfigError(
                    f"{source}.{name}={v!r}: give {p.min_size} to {p.hi} different options of {p.options}"
                )
            if bad:
                raise ConfigError(f"{source}.{name}={v!r}: outside the space ({p.to_dict()})")
        return dict(params)


class Nested(dict):
    """Nested parameter groups that also answer their dotted names (``p["a.b"] == p["a"]["b"]``), so
    an objective written for the flat names keeps working."""

    def __missing__(self, key: Any) -> Any:
        if isinstance(key, str) and "." in key:
            group, _, rest = key.partition(".")
            if isinstance(dict.get(self, group), Nested):
                return self[group][rest]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default


def nest(params: Mapping[str, Any]) -> Nested:
    """Dotted names as nested dicts: ``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (other names as they are)."""
    out = Nested()
    for name, value in params.items():
        *groups, leaf = name.split(".")
        d = out
        for g in groups:
            d = d.setdefault(g, Nested())
        d[leaf] = value
    return out
