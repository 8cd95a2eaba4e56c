"""The built-in decoder (a preallocated KV cache, optionally torch.compile'd) samples what the plain HF
forward samples, with the same log-probs."""

from __future__ import annotations

import pytest
import torch

from reinforge.models import generation
from reinforge.models.decoder import CompiledStep, StaticCacheDecoder, compiled_step
from reinforge.models.generation import HFBackend, SamplingParams, left_pad
from tests.helpers import tiny_lm, word_tokenizer


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_static_cache_decoder_matches_hf_decoding(arch):
    """The preallocated-cache decoder samples the same tokens with the same log-probs as the HF forward,
    and so does its static-shape step (the one CUDA graphs capture), run eagerly here."""
    tok = word_tokenizer()
    model = tiny_lm(0, arch)
    assert StaticCacheDecoder.supports(model)
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]  # ragged: left padding is exercised
    for temperature in (0.0, 1.0):
        params = SamplingParams(temperature=temperature, top_p=1.0, max_tokens=12, n=4, seed=7)
        fast_backend = HFBackend(model, tok, fast=True)
        fast = fast_backend.generate(prompts, params)
        plain = HFBackend(model, tok, fast=False).generate(prompts, params)
        assert fast.completion_ids == plain.completion_ids
        if temperature > 0:  # some rows stop early, and the fast decoder stops running them
            full = len(fast.completion_ids) * (params.max_tokens - 1)
            assert fast.stats["decode_row_steps"] < plain.stats["decode_row_steps"] == full
        for a, b in zip(fast.logprobs, plain.logprobs):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-5)
        ids, mask = left_pad(prompts, 0, torch.device("cpu"))
        eos = torch.tensor([2])
        runs = []
        for static in (False, True):
            gen = torch.Generator().manual_seed(7)
            with torch.no_grad():
                runs.append(
                    fast_backend._decode_static(
                        StaticCacheDecoder(model), ids, mask, params, gen, eos, static_shapes=static
                    )[:2]
                )
        assert torch.equal(runs[0][0], runs[1][0])
        torch.testing.assert_close(runs[0][1], runs[1][1], rtol=1e-4, atol=1e-5)


def test_compile_decode_falls_back_to_eager_and_pads_prompts(monkeypatch):
    """``compile_decode`` pads prompts to a multiple of 8 (masked: the same tokens) and, if compiling fails,
    warns and decodes eagerly. Here the compiler is made to fail, so this runs without compiling."""

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    step = CompiledStep()
    monkeypatch.setattr(step, "fn", broken)
    monkeypatch.setattr(generation, "compiled_step", lambda: step)
    model, tok = tiny_lm(0), word_tokenizer()
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    params = SamplingParams(max_tokens=10, n=4, seed=7)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        padded = HFBackend(model, tok, compile_decode=True).generate(prompts, params)
    plain = HFBackend(model, tok, fast=False).generate(prompts, params)
    assert step.failed and padded.completion_ids == plain.completion_ids
    for a, b in zip(padded.logprobs, plain.logprobs):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_decode_matches_eager():
    """The torch.compile'd decode step samples the same tokens with the same log-probs (compiles: ~10-20 s)."""
    model, tok = tiny_lm(0), word_tokenizer()
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    params = SamplingParams(max_tokens=10, n=4, seed=7)
    compiled = HFBackend(model, tok, compile_decode=True).generate(prompts, params)
    eager = HFBackend(model, tok).generate(prompts, params)
    assert compiled_step().failed is None  # it really compiled
    assert compiled.completion_ids == eager.completion_ids
    for a, b in zip(compiled.logprobs, eager.logprobs):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-5)
