"""Multi-objective ranking: Pareto dominance, non-dominated sorting and crowding distance (NSGA-II).

All functions take values already turned into "lower is better" (``to_minimize``), one row per
trial, one column per objective.

>>> non_dominated_sort([[1, 2], [2, 1], [2, 2], [3, 3]])
[0, 0, 1, 2]
>>> rank_order([[1, 2], [2, 1], [2, 2], [3, 3]])[-1]
3
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def to_minimize(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """(N, M) values with maximised columns negated, so lower is better everywhere."""
    sign = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    return np.asarray(values, dtype=float).reshape(-1, len(directions)) * sign


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (minimisation)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated_sort(values: Sequence[Sequence[float]]) -> list[int]:
    """Front index per row: 0 for the Pareto front, 1 for the front once 0 is removed, ..."""
    n = len(values)
    rank = [-1] * n
    remaining = set(range(n))
    front = 0
    while remaining:
        current = [
            i for i in remaining if not any(dominates(values[j], values[i]) for j in remaining if j != i)
        ]
        for i in current:
            rank[i] = front
        remaining -= set(current)
        front += 1
    return rank


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """(N,) NSGA-II crowding distance within one front; boundary points get +inf."""
    n, m = values.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(values[:, j])
        span = values[order[-1], j] - values[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (values[order[2:], j] - values[order[:-2], j]) / span
    return dist


def rank_order(values: Sequence[Sequence[float]]) -> list[int]:
    """Row indices best first: by front, then by crowding distance (wider spread first)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1 or arr.shape[1] == 1:
        return [int(i) for i in np.argsort(arr.reshape(-1), kind="stable")]
    fronts = non_dominated_sort(arr.tolist())
    crowd = np.zeros(len(arr))
    for f in set(fronts):
        idx = [i for i in range(len(arr)) if fronts[i] == f]
        crowd[idx] = crowding_distance(arr[idx])
    return sorted(range(len(arr)), key=lambda i: (fronts[i], -crowd[i]))
