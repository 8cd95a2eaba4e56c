"""What a step trains on: the RFT prompt rows, held-out preference prompts, the rows of step ``s``,
and the number of steps.

Every trainer (and the service, when it sizes a job's checkpoint cadence) counts steps with
:func:`steps_for` and draws a step's rows with :func:`batch_indices`, so the data position is a
function of the step alone: a resumed run continues exactly where the killed one stopped.

>>> steps_for(None, epochs=1.0, n_units=10, batch=4)
3
>>> sorted(batch_indices(1, 4, 4, seed=0))
[0, 1, 2, 3]
"""

from __future__ import annotations

import functools
import math
import random
from typing import Any

from reinforge.data.preferences import Ranking
from reinforge.data.rft import load_rft_rows, split_rows
from reinforge.tasks import get_task


def steps_for(steps: int | None, epochs: float, n_units: int, batch: int) -> int:
    """``steps`` when set, else ``epochs`` passes over ``n_units`` batch rows (prompts, pairs, packed rows)."""
    return steps or max(1, math.ceil(epochs * n_units / batch))


def batch_indices(step: int, batch: int, n_rows: int, seed: int) -> list[int]:
    """Rows for ``step`` (1-based): epochs are fresh shuffles, so the data position is a function of step."""
    out, start = [], (step - 1) * batch
    for pos in range(start, start + batch):
        epoch, k = divmod(pos, n_rows)
        out.append(epoch_order(n_rows, seed * 1000 + epoch)[k])
    return out


@functools.lru_cache(maxsize=4)
def epoch_order(n_rows: int, seed: int) -> tuple[int, ...]:
    """One epoch's shuffle of the rows (cached: every step of the epoch reads it)."""
    perm = list(range(n_rows))
    random.Random(seed).shuffle(perm)
    return tuple(perm)


def load_prompt_rows(cfg: Any) -> tuple[list[dict], list[dict]]:
    """(train, validation) RFT rows of a GRPO or PPO config: its files, or rows drawn from its ``task``."""
    if cfg.train_file:
        train = load_rft_rows(cfg.train_file)
        if cfg.validation_file:
            val = load_rft_rows(cfg.validation_file)
        elif cfg.validation_split:
            train, val = split_rows(train, cfg.validation_split, cfg.seed)
        else:
            val = []
        return train, val
    task = get_task(cfg.task)
    return (
        task.make_rows(cfg.train_examples, seed=cfg.seed, split="train"),
        task.make_rows(cfg.validation_examples, seed=cfg.seed, split="validation"),
    )


def split_rankings(rows: list[Ranking], fraction: float, seed: int) -> tuple[list[Ranking], list[Ranking]]:
    """Hold out whole prompts of preference rows, so no held-out prompt was seen in training."""
    prompts = sorted({str(r.prompt) for r in rows})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: max(1, round(len(prompts) * fraction))])
    return [r for r in rows if str(r.prompt) not in held], [r for r in rows if str(r.prompt) in held]
