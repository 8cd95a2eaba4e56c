"""Sampling and training agree on what a sampled token's log-prob is."""

from __future__ import annotations

import pytest
import torch

from reinforge.models.generation import HFBackend, SamplingParams, left_pad
from reinforge.train.logprobs import per_token_logps
from tests.helpers import tiny_lm, word_tokenizer


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("temperature,top_p", [(0.7, 1.0), (1.6, 0.9), (0.0, 1.0)])
def test_sampled_logprobs_are_the_trainers_logprobs(fast, temperature, top_p):
    """The log-probs a backend returns with its samples are the ones the trainer recomputes for the same tokens,
    under the temperature-scaled distribution (what the first inner epoch's ratio and PPO's old log-probs
    rest on). top_p only narrows what is drawn: the log-prob stays that of the scaled distribution."""
    model, tok = tiny_lm(3), word_tokenizer()
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=9, n=3, seed=11)
    out = HFBackend(model, tok, fast=fast).generate(prompts, params)
    assert len(out.completion_ids) == 9 and {len(c) for c in out.completion_ids} != {0}

    # [left-padded prompt | right-padded completion] rows, as the trainer sees them
    rows = [prompts[i // params.n] for i in range(len(out.completion_ids))]
    p_ids, p_mask = left_pad(rows, tok.pad_token_id, torch.device("cpu"))
    T = max(len(c) for c in out.completion_ids)
    c_ids = torch.full((len(rows), T), tok.pad_token_id)
    c_mask = torch.zeros(len(rows), T, dtype=torch.long)
    for r, c in enumerate(out.completion_ids):
        c_ids[r, : len(c)], c_mask[r, : len(c)] = torch.tensor(c), 1
    with torch.no_grad():
        trained = per_token_logps(
            model, torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1), T, temperature
        )
    for r, lps in enumerate(out.logprobs):
        torch.testing.assert_close(torch.tensor(lps), trained[r, : len(lps)], rtol=1e-4, atol=1e-5)


def test_sampling_params_are_keyword_only():
    # positional fields were easy to swap (temperature for top_p, max_tokens for n)
    with pytest.raises(TypeError):
        SamplingParams(1.0, 1.0, 8, 2)  # type: ignore[misc]
    assert SamplingParams(max_tokens=8, n=2).temperature == 1.0
