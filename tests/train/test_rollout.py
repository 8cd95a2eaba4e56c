"""collect_rollout packs [left-padded prompt | right-padded completion] rows and grades every sample."""

from __future__ import annotations

import math

import torch

from reinforge.graders import as_grader
from reinforge.models.generation import Generations, SamplingParams
from reinforge.train.rollout import collect_rollout


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
