"""``Subset``: choose which of several options are on (tools, sub-agents, document sets).

A value is a list of options in the order ``options`` gives them, of ``min_size`` to ``max_size``
items. The unit mapping ranks every allowed subset (by size, then lexicographically), so random and
quasi-random draws are uniform over the allowed subsets and grid enumerates them all. Optuna's
samplers see one boolean per option (``name[option]``), the encoding TPE models well; a draw outside
the bounds is repaired by a fixed rule of the draw itself, so the same booleans always mean the same
subset. Evolution adds, removes or swaps an option (``mutate``) and mixes two parents (``cross``).

>>> s = Subset(["search", "calc", "wiki"], min_size=1, max_size=2)
>>> s.count, s.grid(0)[:4]
(6, [['search'], ['calc'], ['wiki'], ['search', 'calc']])
>>> s.decode(s.encode("tools", ["wiki", "search"]).values())
['search', 'wiki']
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from math import comb
from typing import Any

from reinforge.errors import ConfigError
from reinforge.tune.params import Param


@dataclass
class Subset(Param):
    options: list
    min_size: int = 0
    max_size: int | None = None  # default: all the options
    kind = "subset"

    def __post_init__(self):
        self.options = list(self.options)
        if not self.options:
            raise ConfigError("options: give at least one option to choose from")
        if len(set(map(str, self.options))) != len(self.options):
            raise ConfigError(f"options {self.options}: each option must appear once; remove the repeats")
        if self.max_size is None:
            self.max_size = len(self.options)
        n = len(self.options)
        if not 0 <= self.min_size <= self.max_size <= n:
            raise ConfigError(
                f"min_size {self.min_size}, max_size {self.max_size} with {n} options: need "
                f"0 <= min_size <= max_size <= {n}; lower min_size or raise max_size"
            )

    @property
    def hi(self) -> int:
        return len(self.options) if self.max_size is None else self.max_size

    @property
    def count(self) -> int:
        """How many subsets the bounds allow."""
        return sum(comb(len(self.options), k) for k in range(self.min_size, self.hi + 1))

    def canonical(self, chosen: Iterable) -> list:
        """``chosen`` in the options' order (a value's one spelling: caches and repeats compare it)."""
        picked = set(map(str, chosen))
        return [o for o in self.options if str(o) in picked]

    def unknown(self, value: Any) -> list:
        """The items of ``value`` that are not options."""
        names = set(map(str, self.options))
        return [v for v in value if str(v) not in names] if isinstance(value, list | tuple) else [value]

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, list | tuple)
            and not self.unknown(value)
            and len(set(map(str, value))) == len(value)
            and self.min_size <= len(value) <= self.hi
        )

    # -- the unit mapping: rank r of count subsets, ordered by size then lexicographically
    def from_unit(self, u: float) -> list:
        r = min(int(u * self.count), self.count - 1)
        n = len(self.options)
        for k in range(self.min_size, self.hi + 1):
            if r < comb(n, k):
                return [self.options[i] for i in _unrank(r, n, k)]
            r -= comb(n, k)
        raise AssertionError("rank past the last subset")

    def to_unit(self, value: list) -> float:
        n, idx = len(self.options), [self.options.index(o) for o in self.canonical(value)]
        r = sum(comb(n, k) for k in range(self.min_size, len(idx)))
        return (r + _rank(idx, n) + 0.5) / self.count

    def grid(self, n: int) -> list[list]:
        """Every allowed subset (``n`` does not thin it out, as for a Choice)."""
        return [self.from_unit((r + 0.5) / self.count) for r in range(self.count)]

    # -- Optuna: one boolean per option
    def distribution(self):
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution([False, True])

    def bit_names(self, name: str) -> list[str]:
        return [f"{name}[{o}]" for o in self.options]

    def encode(self, name: str, value: list) -> dict[str, bool]:
        chosen = set(map(str, value))
        return {b: str(o) in chosen for b, o in zip(self.bit_names(name), self.options)}

    def decode(self, bits: Iterable[bool]) -> list:
        """The subset the booleans say, brought within the bounds by a fixed rule of the booleans
        (added or dropped options in an order shuffled by them, so no option is favoured)."""
        bits = [bool(b) for b in bits]
        chosen = [o for o, b in zip(self.options, bits) if b]
        return self.repair(chosen, random.Random("".join("1" if b else "0" for b in bits)))

    # -- evolution
    def repair(self, chosen: list, rng: random.Random) -> list:
        """``chosen`` with random options added or dropped until its size is within the bounds."""
        chosen = self.canonical(chosen)
        rest = [o for o in self.options if o not in chosen]
        rng.shuffle(rest)
        while len(chosen) < self.min_size:
            chosen.append(rest.pop())
        while len(chosen) > self.hi:
            chosen.pop(rng.randrange(len(chosen)))
        return self.canonical(chosen)

    def mutate(self, value: list, rng: random.Random) -> list:
        """Add, remove or swap one option (whichever the bounds allow)."""
        chosen, rest = self.canonical(value), [o for o in self.options if str(o) not in set(map(str, value))]
        ops = [
            op
            for op, ok in (
                ("add", rest and len(chosen) < self.hi),
                ("remove", len(chosen) > self.min_size),
                ("swap", rest and chosen),
            )
            if ok
        ]
        if not ops:
            return chosen
        op = rng.choice(ops)
        if op != "add":
            chosen.pop(rng.randrange(len(chosen)))
        if op != "remove":
            chosen.append(rng.choice(rest))
        return self.canonical(chosen)

    def cross(self, a: list, b: list, rng: random.Random) -> list:
        """Options both parents have, and each option only one has with probability 1/2."""
        sa, sb = set(map(str, a)), set(map(str, b))
        both = [o for o in self.options if str(o) in sa and str(o) in sb]
        one = [o for o in self.options if (str(o) in sa) != (str(o) in sb)]
        return self.repair(both + [o for o in one if rng.random() < 0.5], rng)


def _unrank(r: int, n: int, k: int) -> list[int]:
    """The ``r``-th ``k``-combination of ``range(n)`` in lexicographic order."""
    out, i = [], 0
    while k:
        c = comb(n - i - 1, k - 1)
        if r < c:
            out.append(i)
            k -= 1
        else:
            r -= c
        i += 1
    return out


def _rank(idx: list[int], n: int) -> int:
    """Inverse of :func:`_unrank`."""
    r, prev, k = 0, -1, len(idx)
    for j, i in enumerate(idx):
        r += sum(comb(n - x - 1, k - j - 1) for x in range(prev + 1, i))
        prev = i
    return r
