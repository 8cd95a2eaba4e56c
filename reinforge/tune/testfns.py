"""Standard test functions for optimisers, as objectives over named parameters.

>>> round(branin({"x1": 3.14159, "x2": 2.275}), 3)
0.398
>>> round(hartmann6({f"x{i}": v for i, v in enumerate([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])}), 3)
-3.322
"""

from __future__ import annotations

import math

import numpy as np

BRANIN_MIN = 0.397887
HARTMANN6_MIN = -3.32237

A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(params: dict) -> float:
    """Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]; minimum 0.397887 at three points."""
    x1, x2 = params["x1"], params["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(params: dict) -> float:
    """Hartmann-6 on [0, 1]^6 (params x0..x5); minimum -3.32237."""
    x = np.array([params[f"x{i}"] for i in range(6)])
    return float(-(ALPHA * np.exp(-(A * (x - P) ** 2).sum(axis=1))).sum())


def branin_space() -> dict:
    from reinforge.tune.space import Float

    return {"x1": Float(-5, 10), "x2": Float(0, 15)}


def hartmann6_space() -> dict:
    from reinforge.tune.space import Float

    return {f"x{i}": Float(0, 1) for i in range(6)}
