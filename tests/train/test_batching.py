"""Batching: a step's rows are a function of the step, and one step count for every trainer."""

from __future__ import annotations

import pytest

from reinforge.train.batching import batch_indices, steps_for


def test_batch_indices_cover_each_epoch_once():
    seen = [i for s in range(1, 6) for i in batch_indices(s, 4, 20, seed=3)]
    assert sorted(seen) == list(range(20))
    assert batch_indices(2, 4, 20, 3) == batch_indices(2, 4, 20, 3)


@pytest.mark.parametrize(
    ("steps", "epochs", "n_units", "batch", "expected"),
    [
        (7, 3.0, 100, 8, 7),  # steps set: it wins over epochs
        (None, 1.0, 20, 8, 3),  # a partial last batch is a step
        (None, 0.5, 16, 8, 1),  # half an epoch
        (None, 2.0, 16, 8, 4),  # two epochs
        (None, 1.0, 0, 8, 1),  # no rows: still one step (the trainer refuses empty data itself)
    ],
)
def test_steps_for(steps, epochs, n_units, batch, expected):
    assert steps_for(steps, epochs, n_units, batch) == expected
