"""Parameter types: ``Int``, ``Float``, ``Bool``, ``Choice`` and ``Text`` (``Subset`` is in ``subset.py``).

Every parameter maps a unit number ``u`` in [0, 1) to a value (``from_unit``), which the random,
quasi-random and evolution samplers share, and names its Optuna distribution for the Bayesian samplers.

>>> Int(4, 13, step=4).grid(10), Choice(["a", "b"]).from_unit(0.7)
([4, 8, 12], 'b')
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

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
