"""Label quality for human preferences: agreement, gold accuracy, throughput and aggregation.

A label's *value* is a ranking (a tuple of response indices, best first) or ``None`` for a skip (the
annotator saw no preference: a tie, or could not tell). Skips are explicit: they never count as a vote,
and they are missing data for agreement (Krippendorff's treatment of unpairable values).

- :func:`label_value`: a ranking or thumbs judgement as a value;
- :func:`pairwise_agreement`: the share of pairs of labels on the same item that agree;
- :func:`krippendorff_alpha`: Krippendorff's alpha, nominal metric (each distinct ranking a category);
- :func:`gold_accuracy`: each annotator's accuracy on gold items (items with known answers);
- :func:`labels_per_hour`: each annotator's throughput;
- :func:`aggregate`: several labels of one item as one preference (majority or Bradley-Terry), with
  ``tie``, ``skipped`` and ``unlabelled`` outcomes stated rather than dropped.

>>> units = {"i1": [(0, 1), (0, 1)], "i2": [(0, 1), (1, 0)], "i3": [(1, 0), (1, 0)]}
>>> pairwise_agreement(units), round(krippendorff_alpha(units), 4)  # alpha = 1 - 5 * 2 / 18
(0.6667, 0.4444)
>>> aggregate([(1, 0), (1, 0), (0, 1), None])
Outcome(status='decided', ranking=(1, 0), votes=3, skips=1)
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Value = tuple[int, ...] | None  # a ranking, best first; None: a skip


@dataclass(frozen=True)
class Label:
    """One annotator's judgement of one item at time ``at`` (seconds)."""

    item: Hashable
    annotator: str
    value: Value
    at: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """An item's labels as one preference. ``status``: decided (``ranking`` holds it), tie (the votes
    split evenly at the top), skipped (every label is a skip) or unlabelled (no label)."""

    status: Literal["decided", "tie", "skipped", "unlabelled"]
    ranking: tuple[int, ...] | None
    votes: int  # labels that are not skips
    skips: int


def label_value(ranking: Sequence[int] | None, thumbs: Mapping[str, int] | None, n: int) -> Value:
    """A judgement as a value: a full ranking as it is; thumbs over two responses, one up and one down,
    as the pair; anything else (a skip, two ups, one thumb) as a skip.

    >>> label_value([1, 0], None, 2), label_value(None, {"0": 1, "1": -1}, 2), label_value(None, {"0": 1}, 2)
    ((1, 0), (0, 1), None)
    """
    if ranking is not None and sorted(ranking) == list(range(n)):
        return tuple(int(i) for i in ranking)
    by_index = {int(k): v for k, v in (thumbs or {}).items()}
    if n == 2 and len(by_index) == 2 and sorted(by_index.values()) == [-1, 1]:
        return (0, 1) if by_index[0] > 0 else (1, 0)
    return None


def _votes(units: Mapping[Hashable, Sequence[Value]]) -> list[list[tuple[int, ...]]]:
    """Per item, its non-skip values, for items with at least two (only those can agree or not)."""
    votes = [[v for v in values if v is not None] for values in units.values()]
    return [v for v in votes if len(v) >= 2]


def pairwise_agreement(units: Mapping[Hashable, Sequence[Value]]) -> float | None:
    """The share of pairs of non-skip labels of the same item that are equal, over all items (each pair
    counts once); None when no item has two. Rounded to 4 places.

    >>> pairwise_agreement({"a": [(0, 1), (0, 1), (1, 0)], "b": [(0, 1), None]})  # 1 of 3 pairs agree
    0.3333
    """
    pairs = [(x, y) for v in _votes(units) for x, y in itertools.combinations(v, 2)]
    return round(sum(x == y for x, y in pairs) / len(pairs), 4) if pairs else None


def krippendorff_alpha(units: Mapping[Hashable, Sequence[Value]]) -> float | None:
    """Krippendorff's alpha with the nominal metric: ``1 - (n - 1) * sum_{c!=k} o_ck / sum_{c!=k} n_c n_k``
    where ``o_ck`` is the coincidence matrix (each ordered pair of values within an item of ``m`` values
    adds ``1 / (m - 1)``), ``n_c`` its margins and ``n`` their sum. Skips are missing values. None when
    fewer than two values are pairable or every value is the same category (no expected disagreement).
    See Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), section C."""
    o: dict[tuple, float] = defaultdict(float)
    for v in _votes(units):
        for i, j in itertools.permutations(range(len(v)), 2):
            o[(v[i], v[j])] += 1 / (len(v) - 1)
    n_c: dict[tuple, float] = defaultdict(float)
    for (c, _k), w in o.items():
        n_c[c] += w
    n = sum(n_c.values())
    expected = sum(n_c[c] * n_c[k] for c, k in itertools.permutations(n_c, 2))
    if n < 2 or expected == 0:
        return None
    observed = sum(w for (c, k), w in o.items() if c != k)
    return 1 - (n - 1) * observed / expected


def gold_accuracy(labels: Iterable[Label], gold: Mapping[Hashable, Value]) -> dict[str, dict]:
    """Per annotator, over the gold items they labelled: ``correct``, ``answered`` (non-skip labels),
    ``skipped`` and ``accuracy`` = correct / answered (None when nothing was answered).

    >>> gold_accuracy([Label("g1", "ann", (0, 1)), Label("g2", "ann", (0, 1)), Label("g3", "ann", None)],
    ...               {"g1": (0, 1), "g2": (1, 0), "g3": (0, 1)})
    {'ann': {'correct': 1, 'answered': 2, 'skipped': 1, 'accuracy': 0.5}}
    """
    out: dict[str, dict] = {}
    for lb in labels:
        if lb.item not in gold:
            continue
        row = out.setdefault(lb.annotator, {"correct": 0, "answered": 0, "skipped": 0, "accuracy": None})
        if lb.value is None:
            row["skipped"] += 1
            continue
        row["answered"] += 1
        row["correct"] += lb.value == gold[lb.item]
    for row in out.values():
        row["accuracy"] = round(row["correct"] / row["answered"], 4) if row["answered"] else None
    return out


def labels_per_hour(labels: Iterable[Label]) -> dict[str, float | None]:
    """Per annotator, ``(labels - 1) / hours between their first and last label`` (the first label's
    start is unknown, so it opens the clock); None with fewer than two labels.

    >>> labels_per_hour([Label("a", "ann", None, 0.0), Label("b", "ann", None, 600.0),
    ...                  Label("c", "ann", None, 1200.0), Label("a", "bob", None, 5.0)])
    {'ann': 6.0, 'bob': None}
    """
    times: dict[str, list[float]] = defaultdict(list)
    for lb in labels:
        times[lb.annotator].append(lb.at)
    out: dict[str, float | None] = {}
    for who, ts in times.items():
        span = max(ts) - min(ts)
        out[who] = round((len(ts) - 1) * 3600 / span, 2) if len(ts) > 1 and span > 0 else None
    return out


def bradley_terry(rankings: Sequence[tuple[int, ...]], iters: int = 200) -> list[float]:
    """Bradley-Terry strengths of the responses (indices ``0..n-1``) from every pair each ranking
    implies, by Hunter's MM updates ``p_i = W_i / sum_j n_ij / (p_i + p_j)``, normalised to sum 1.
    A response that never wins gets 0. Hunter, "MM algorithms for generalized Bradley-Terry models" (2004).

    >>> [round(p, 3) for p in bradley_terry([(0, 1), (0, 1), (1, 0)])]  # 2 wins to 1: p0 / p1 = 2
    [0.667, 0.333]
    """
    n = max(len(r) for r in rankings)
    wins = [[0] * n for _ in range(n)]
    for r in rankings:
        for a, b in itertools.combinations(r, 2):  # a is ranked above b
            wins[a][b] += 1
    p = [1 / n] * n
    for _ in range(iters):
        new = []
        for i in range(n):
            games = sum((wins[i][j] + wins[j][i]) / (p[i] + p[j]) for j in range(n) if j != i)
            new.append(sum(wins[i]) / games if games else 0.0)
        total = sum(new) or 1.0
        p = [x / total for x in new]
    return p


def aggregate(values: Sequence[Value], method: Literal["majority", "bradley_terry"] = "majority") -> Outcome:
    """Several labels of one item as one :class:`Outcome`. ``majority``: the most frequent ranking, a
    tie when two share the top count. ``bradley_terry``: the order of the fitted strengths, a tie when
    two responses have equal strength (to 1e-6).

    >>> aggregate([(0, 1), (1, 0)]).status, aggregate([None, None]).status, aggregate([]).status
    ('tie', 'skipped', 'unlabelled')
    >>> aggregate([(0, 1, 2), (1, 0, 2), (0, 2, 1)], "bradley_terry").ranking
    (0, 1, 2)
    """
    votes = [v for v in values if v is not None]
    skips = len(values) - len(votes)
    if not votes:
        return Outcome("skipped" if skips else "unlabelled", None, 0, skips)
    if method == "bradley_terry":
        p = bradley_terry(votes)
        order = tuple(sorted(range(len(p)), key=lambda i: -p[i]))
        if any(abs(p[a] - p[b]) < 1e-6 for a, b in itertools.pairwise(order)):
            return Outcome("tie", None, len(votes), skips)
        return Outcome("decided", order, len(votes), skips)
    (top, count), *rest = Counter(votes).most_common() + [(None, 0)]
    if rest[0][1] == count:
        return Outcome("tie", None, len(votes), skips)
    return Outcome("decided", top, len(votes), skips)


def summarise(
    labels: Sequence[Label], gold: Mapping[Hashable, Value], items: Sequence[Hashable], k: int
) -> dict:
    """One round's figures: label and item counts, the outcomes of ``items`` (the non-gold items; each
    ``complete`` with ``k`` labels), agreement and alpha over every item, and per annotator their labels,
    labels per hour and gold accuracy (None without gold labels).

    >>> out = summarise([Label("i", "ann", (0, 1)), Label("i", "bob", (0, 1)), Label("g", "bob", (1, 0))],
    ...                 {"g": (0, 1)}, ["i", "j"], k=2)
    >>> out["complete"], out["outcomes"], out["agreement"], out["annotators"]["bob"]["gold"]["accuracy"]
    (1, {'decided': 1, 'tie': 0, 'skipped': 0, 'unlabelled': 1}, 1.0, 0.0)
    """
    units: dict[Hashable, list[Value]] = defaultdict(list)
    for lb in labels:
        units[lb.item].append(lb.value)
    outcomes = Counter({"decided": 0, "tie": 0, "skipped": 0, "unlabelled": 0})
    outcomes.update(aggregate(units.get(i, [])).status for i in items)
    alpha = krippendorff_alpha(units)
    per_hour, accuracy = labels_per_hour(labels), gold_accuracy(labels, gold)
    counts = Counter(lb.annotator for lb in labels)
    return {
        "labels": len(labels),
        "items": len(items),
        "complete": sum(len(units.get(i, [])) >= k for i in items),
        "outcomes": dict(outcomes),
        "agreement": pairwise_agreement(units),
        "alpha": round(alpha, 4) if alpha is not None else None,
        "annotators": {
            who: {"labels": counts[who], "per_hour": per_hour[who], "gold": accuracy.get(who)}
            for who in counts
        },
    }
