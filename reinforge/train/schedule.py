"""Learning-rate schedules: linear warm-up, then constant, linear or cosine decay.

>>> f = lr_lambda(warmup_steps=2, total_steps=10, kind="linear")
>>> [round(f(s), 3) for s in (0, 1, 2, 10)]
[0.5, 1.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Literal

import torch

ScheduleKind = Literal["constant", "linear", "cosine"]


def lr_lambda(warmup_steps: int, total_steps: int, kind: ScheduleKind = "constant", min_ratio: float = 0.0):
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        decay = 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return min_ratio + (1.0 - min_ratio) * decay

    return f


def make_scheduler(optimizer, warmup_steps: int, total_steps: int, kind: ScheduleKind):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup_steps, total_steps, kind))
