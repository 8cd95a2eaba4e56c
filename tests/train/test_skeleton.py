"""The run skeleton: the one CLI entry refuses to start afresh over an unfinished run, for every trainer."""

from __future__ import annotations

import pytest

from reinforge.errors import ReinforgeError
from reinforge.train.registry import TRAINERS, run_from_cli

# the least each config needs to validate (a data source), so the guard is what refuses
MINIMAL = {"rft": ["task=addition"], "ppo": ["task=addition"], "sft": ["task=addition"], "dpo": [], "rm": []}


@pytest.mark.parametrize("algo", sorted(MINIMAL))
def test_an_unfinished_run_needs_resume(tmp_path, algo):
    """Checkpoints but no summary: a killed run. DPO and RM started afresh over it (their own main
    lacked the guard); every trainer now refuses before loading anything, and names the fix."""
    (tmp_path / "run" / "checkpoints" / "step-2").mkdir(parents=True)
    with pytest.raises(ReinforgeError, match="an unfinished run is there; pass --resume to continue it"):
        run_from_cli(algo, None, [*MINIMAL[algo], f"output_dir={tmp_path / 'run'}"], resume=False)


def test_every_trainer_is_dispatched():
    assert set(MINIMAL) | {"rlhf"} == set(TRAINERS)
