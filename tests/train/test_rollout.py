"""collect_rollout packs [left-padded prompt | right-padded completion] rows and grades every sample."""

from __future__ import annotations

import math

import pytest
import torch

from reinforge.graders import as_grader
from reinforge.graders.base import Grade, GraderError, error_grade
from reinforge.models.generation import Generations, SamplingParams
from reinforge.train.rollout import (
    GraderErrorGuard,
    collect_rollout,
    grader_error_fields,
    grader_error_summary,
)


class FixedBackend:
    """Returns the same completions whatever the prompts: the packing is what is under test."""

    def __init__(self, completions: list[list[int]], logprobs: list[list[float]]):
        self.completions, self.logprobs = completions, logprobs

    def generate(self, prompt_ids, params):
        texts = ["x" * len(c) for c in self.completions]
        return Generations(self.completions, self.logprobs, texts, ["stop"] * len(texts), n=params.n)


def test_rollout_layout_masks_and_rewards():
    prompts = [[5, 6, 7], [8]]  # ragged: the second is left-padded by 2
    comps = [[10, 11], [12], [13, 14, 15], []]  # G = 2 per prompt, ragged, one empty
    lps = [[-0.1, -0.2], [-0.3], [-0.4, -0.5, -0.6], []]
    grader = as_grader(lambda item, sample: float(len(sample["output_text"])) + item["bonus"])
    rows = [{"bonus": 0.5}, {"bonus": 0.0}]
    roll = collect_rollout(FixedBackend(comps, lps), grader, rows, prompts, SamplingParams(n=2), pad_id=0)

    P, T = 3, 3
    assert roll.input_ids.tolist() == [
        [5, 6, 7, 10, 11, 0],
        [5, 6, 7, 12, 0, 0],
        [0, 0, 8, 13, 14, 15],
        [0, 0, 8, 0, 0, 0],
    ]
    assert roll.attention_mask.tolist() == [
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 1],
        [0, 0, 1, 0, 0, 0],
    ]
    assert roll.completion_mask.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert roll.n_completion == T and roll.input_ids.shape[1] == P + T
    torch.testing.assert_close(roll.sample_logps[2], torch.tensor([-0.4, -0.5, -0.6]))
    assert roll.sample_logps[3].abs().sum() == 0
    assert roll.rewards.tolist() == [[2.5, 1.5], [3.0, 0.0]]  # (B, G): length + the row's bonus
    assert roll.input_ids.dtype == torch.long and roll.sample_logps.dtype == torch.float32
    assert math.isfinite(roll.gen_seconds) and len(roll.grades) == 4


# -- a grader that fails stops the run (issue 14 item 2)

OK, BAD = Grade(1.0), error_grade("python_grader_runtime_error", "grade() returned str 'x'; expected a float")


@pytest.mark.parametrize(
    "max_fraction, failed_per_step, stops_at",
    [
        (None, [4], 1),  # default: all of the first step's grades fail -> stop at once
        (None, [3, 3, 3, 3], None),  # default: some failures never stop a run
        (None, [0, 4, 4, 4], 4),  # later: all fail on 3 steps in a row
        (None, [0, 4, 4, 0, 4, 4], None),  # ... not when a good step breaks the run of failures
        (0.5, [2], None),  # at the limit is allowed
        (0.5, [3], 1),  # over it on the first step
        (0.0, [0, 1, 1, 1], 4),  # no failure tolerated (after the first step: 3 in a row)
        (1.0, [4, 4, 4, 4], None),  # 1: never stop
    ],
)
def test_grader_error_guard(max_fraction, failed_per_step, stops_at):
    guard = GraderErrorGuard("g", max_fraction)
    for step, n_bad in enumerate(failed_per_step, 1):
        grades = [BAD] * n_bad + [OK] * (4 - n_bad)
        if step == stops_at:
            with pytest.raises(
                GraderError, match=f"grader 'g' failed on {n_bad}/4 grades at step {step}"
            ) as e:
                guard.check(step, grades)
            assert e.value.kind == "python_grader_runtime_error" and "returned str" in e.value.details
            return
        guard.check(step, grades)
    assert stops_at is None


def test_grader_error_fields_bar_and_summary():
    assert grader_error_fields([OK, OK]) == {"grader/errors": 0}
    fields = grader_error_fields([OK, BAD, BAD])
    assert fields["grader/errors"] == 2 and fields["grader/error_kind"] == "python_grader_runtime_error"
    guard = GraderErrorGuard("g", 1.0)
    guard.check(1, [OK, OK])
    assert guard.bar_fields() == {}  # nothing shown while no grade has failed
    guard.check(2, [OK, BAD])
    guard.check(3, [OK, OK])
    assert guard.bar_fields() == {"grader_err": "0/2"}  # shown for the rest of the run, for the last step
    summary = grader_error_summary([{"step": 1, "grader/errors": 0}, {"step": 2, **fields}])
    assert summary["grader_errors"] == 2
    assert (
        summary["first_grader_error"]["step"] == 2
        and "returned str" in summary["first_grader_error"]["message"]
    )
