"""Search spaces: ``Int``, ``Float``, ``Bool``, ``Choice`` and ``Text`` parameters, optionally conditional.

A space is an ordered mapping ``name -> Param``. A parameter with ``when={"other": value}`` is active
only when an *earlier* parameter has that value (or one of a list of values); inactive parameters are
left out of a configuration. Every parameter maps a unit number ``u`` in [0, 1) to a value
(``from_unit``), which the random, quasi-random and evolution samplers share, and names its Optuna
distribution for the Bayesian samplers.

>>> space = Space({"k": Int(1, 10), "retriever": Choice(["bm25", "hybrid"]),
...                "alpha": Float(0.0, 1.0, when={"retriever": "hybrid"})})
>>> space.active_names({"k": 3, "retriever": "bm25"})
['k', 'retriever']
>>> Space.from_dict({"lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}})["lr"].log
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator

from reinforge.errors import ConfigError


@dataclass
class Param:
    """One knob. Subclasses define ``from_unit``, ``to_unit``, ``grid`` and ``distribution``."""

    when: dict[str, Any] | None = field(default=None, kw_only=True)  # active only if earlier params match

    kind = "param"

    def from_unit(self, u: float) -> Any:
        """Map ``u`` in [0, 1) to a value (uniform in the parameter's own scale)."""
        raise NotImplementedError

    def to_unit(self, value: Any) -> float:
        """Inverse of ``from_unit`` (the middle of the value's cell for discrete parameters)."""
        raise NotImplementedError

    def grid(self, n: int) -> list:
        """At most ``n`` evenly spread values (all of them for small discrete parameters)."""
        raise NotImplementedError

    def distribution(self):
        """The Optuna distribution the Bayesian samplers draw from."""
        raise NotImplementedError

    def sample(self, rng: random.Random) -> Any:
        return self.from_unit(rng.random())

    def to_dict(self) -> dict:
        d = {"type": self.kind, **{k: v for k, v in self.__dict__.items() if k != "when"}}
        if self.when:
            d["when"] = self.when
        return d


@dataclass
class Int(Param):
    low: int
    high: int
    step: int = 1
    log: bool = False
    kind = "int"

    def __post_init__(self):
        if self.high < self.low:
            raise ConfigError(f"low {self.low} > high {self.high}: a range needs low <= high; swap them")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ConfigError(
                f"log: true needs low > 0 and step 1 (low {self.low}, step {self.step}); fix them or drop log"
            )

    def _values(self) -> int:
        return (self.high - self.low) // self.step + 1

    def nearest(self, x: float) -> int:
        """The value of this parameter closest to ``x``: clipped to the range, on the ``step`` grid.

        >>> Int(4, 13, step=4).nearest(6.1), Int(4, 13, step=4).nearest(15)
        (8, 12)
        """
        k = round((min(max(x, self.low), self.high) - self.low) / self.step)
        return self.low + self.step * min(max(int(k), 0), self._values() - 1)

    def contains(self, v: Any) -> bool:
        return isinstance(v, int) and self.low <= v <= self.high and (v - self.low) % self.step == 0

    def from_unit(self, u: float) -> int:
        if self.log:
            x = math.exp(
                math.log(self.low - 0.5) + u * (math.log(self.high + 0.5) - math.log(self.low - 0.5))
            )
            return int(min(self.high, max(self.low, round(x))))
        return self.low + self.step * min(int(u * self._values()), self._values() - 1)

    def to_unit(self, value: int) -> float:
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return (math.log(value) - lo) / (hi - lo)
        return ((value - self.low) / self.step + 0.5) / self._values()

    def grid(self, n: int) -> list[int]:
        if self._values() <= n:
            return list(range(self.low, self.high + 1, self.step))
        return sorted({self.from_unit((i + 0.5) / n) for i in range(n)})

    def distribution(self):
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)


@dataclass
class Float(Param):
    low: float
    high: float
    log: bool = False
    kind = "float"

    def __post_init__(self):
        self.low, self.high = float(self.low), float(self.high)
        if self.high < self.low:
            raise ConfigError(f"low {self.low} > high {self.high}: a range needs low <= high; swap them")
        if self.log and self.low <= 0:
            raise ConfigError(f"log: true needs low > 0 (low {self.low}); raise low or drop log")

    def from_unit(self, u: float) -> float:
        if self.log:  # exp(log(x)) may round past a bound
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
            return min(max(x, self.low), self.high)
        return self.low + u * (self.high - self.low)

    def to_unit(self, value: float) -> float:
        if self.high == self.low:
            return 0.5
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def grid(self, n: int) -> list[float]:
        return [self.from_unit(i / (n - 1)) for i in range(n)] if n > 1 else [self.from_unit(0.5)]

    def distribution(self):
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)


@dataclass
class Choice(Param):
    values: list
    kind = "choice"

    def __post_init__(self):
        if not self.values:
            raise ConfigError("Choice([]): give at least one value")

    def from_unit(self, u: float) -> Any:
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def to_unit(self, value: Any) -> float:
        return (self.values.index(value) + 0.5) / len(self.values) if value in self.values else 0.5

    def grid(self, n: int) -> list:
        return list(self.values)

    def distribution(self):
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.values))


@dataclass
class Bool(Choice):
    values: list = field(default_factory=lambda: [False, True])
    kind = "bool"

    def to_dict(self) -> dict:
        return {"type": "bool", **({"when": self.when} if self.when else {})}


@dataclass
class Text(Choice):
    """A prompt or any free text. ``values`` are seed variants; the evolution sampler mutates and
    crosses them (new texts appear), the other samplers choose among the seeds."""

    kind = "text"


PARAM_TYPES: dict[str, type[Param]] = {
    "int": Int,
    "float": Float,
    "bool": Bool,
    "choice": Choice,
    "text": Text,
}


def param_from_dict(name: str, spec: Any) -> Param:
    """YAML form: ``{type: int, low: 1, high: 10}``; a bare list is a Choice."""
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, list):
        return Choice(spec)
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ConfigError(
            f"space.{name}: expected a mapping with 'type' (int|float|bool|choice|text) or a list"
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
            seen.append(name)

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
            if other not in params or params[other] not in wants:
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
            if bad:
                raise ConfigError(f"{source}.{name}={v!r}: outside the space ({p.to_dict()})")
        return dict(params)
