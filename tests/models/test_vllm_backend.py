"""VLLMBackend on a stand-in engine with vLLM's interface (no vLLM and no GPU on this project's machines):
request -> Generations mapping, weight pushes only when the policy changed, and backend selection."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from reinforge.errors import ReinforgeError
from reinforge.models.generation import HFBackend, SamplingParams
from reinforge.models.vllm_backend import VLLMBackend, make_backend

EOS = 2


class EngineModel:
    """Records what ``load_weights`` received, as vLLM's model runner would consume it."""

    def __init__(self):
        self.pushes: list[dict[str, torch.Tensor]] = []

    def load_weights(self, weights):
        self.pushes.append({name: t.clone() for name, t in weights})


class StandInLLM:
    """``vllm.LLM``'s generate/reset_prefix_cache and the engine path the backend pushes weights through."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.engine_model = EngineModel()
        runner = SimpleNamespace(model=self.engine_model)
        self.llm_engine = SimpleNamespace(
            model_executor=SimpleNamespace(driver_worker=SimpleNamespace(model_runner=runner))
        )
        self.resets = 0
        self.last_params = None

    def reset_prefix_cache(self):
        self.resets += 1

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.last_params = sampling_params
        outs = []
        for p in prompts:
            last = p["prompt_token_ids"][-1]
            samples = []
            for j in range(sampling_params.n):
                tokens = [last + j + 3] * (j + 1) + ([EOS] if j % 2 == 0 else [])
                # the sampled token's entry, plus another one: the backend must pick by token id
                steps = [
                    {t: SimpleNamespace(logprob=-0.1 * (k + 1)), 99: SimpleNamespace(logprob=-9.0)}
                    for k, t in enumerate(tokens)
                ]
                samples.append(
                    SimpleNamespace(
                        index=j,
                        token_ids=tokens,
                        logprobs=steps,
                        finish_reason="stop" if j % 2 == 0 else "length",
                    )
                )
            outs.append(SimpleNamespace(outputs=samples[::-1]))  # out of index order on purpose
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = StandInLLM
    module.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


@pytest.fixture
def policy(tiny_untrained_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_untrained_dir), AutoTokenizer.from_pretrained(
        tiny_untrained_dir
    )


def test_generations_are_prompt_major_with_sampled_token_logprobs(fake_vllm, policy):
    model, tok = policy
    backend = make_backend("vllm", model, tok)
    assert isinstance(backend, VLLMBackend)
    kw = backend.llm.kwargs
    assert kw["model"] == model.name_or_path and kw["dtype"] == "float32"
    assert kw["logprobs_mode"] == "processed_logprobs" and kw["enable_prefix_caching"]
    out = backend.generate([[5, 6], [7]], SamplingParams(temperature=0.7, max_tokens=4, n=2, seed=3))
    assert out.completion_ids == [[9, EOS], [10, 10], [10, EOS], [11, 11]]
    assert out.logprobs[1] == pytest.approx([-0.1, -0.2])
    assert out.finish_reasons == ["stop", "length", "stop", "length"]
    assert out.texts == tok.batch_decode(out.completion_ids, skip_special_tokens=True)
    sp = backend.llm.last_params
    assert (sp.n, sp.temperature, sp.max_tokens, sp.seed, sp.logprobs) == (2, 0.7, 4, 3, 0)
    assert sp.stop_token_ids == [tok.eos_token_id] and not sp.ignore_eos


def test_weights_pushed_only_when_the_policy_changed(fake_vllm, policy):
    model, tok = policy
    backend = make_backend("vllm", model, tok)
    pushes = backend.llm.engine_model.pushes
    params = SamplingParams(max_tokens=2, n=1)
    backend.generate([[5]], params)
    assert len(pushes) == 1 and set(pushes[0]) == {n for n, _ in model.named_parameters()}
    backend.generate([[5]], params)  # same weights: nothing to push
    assert len(pushes) == 1
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.tensor([[5, 6]])).logits.sum().backward()
    opt.step()
    backend.generate([[5]], params)
    assert len(pushes) == 2 and backend.llm.resets == 2
    name, p = next(iter(model.named_parameters()))
    assert torch.equal(pushes[1][name], p.detach()) and not torch.equal(pushes[0][name], p.detach())


def test_no_stop_id_means_fixed_length(fake_vllm, policy):
    model, tok = policy
    backend = VLLMBackend(model, tok, eos_token_ids=[-1], llm=StandInLLM())
    backend.generate([[5]], SamplingParams(max_tokens=3))
    assert backend.llm.last_params.stop_token_ids == [] and backend.llm.last_params.ignore_eos


def test_backend_choice(fake_vllm, policy, monkeypatch):
    model, tok = policy
    assert isinstance(make_backend("auto", model, tok), HFBackend)  # CPU: the built-in decoder
    assert isinstance(make_backend("hf", model, tok), HFBackend)
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed
    with pytest.raises(ReinforgeError, match="pip install vllm"):
        make_backend("vllm", model, tok)


def test_the_engine_runs_in_this_process(fake_vllm, policy, monkeypatch):
    """vLLM V1's external launcher asserts VLLM_ENABLE_V1_MULTIPROCESSING=0, and only an in-process engine
    exposes llm_engine.model_executor (the weight push's path); a multiprocess one is a one-line error."""
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    model, tok = policy
    backend = make_backend("vllm", model, tok)
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    backend.llm.llm_engine = SimpleNamespace()  # what a multiprocess engine has: no model_executor
    with pytest.raises(ReinforgeError, match="VLLM_ENABLE_V1_MULTIPROCESSING=0"):
        backend.sync_weights()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_real_vllm_generates_and_follows_the_policys_weights(tiny_untrained_dir):
    """On a GPU with vLLM: the backend generates the greedy tokens HF generates, and after the policy's
    weights change (here: a zeroed output layer) the engine's next greedy output follows."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs CUDA")
    model = AutoModelForCausalLM.from_pretrained(tiny_untrained_dir).cuda()
    tok = AutoTokenizer.from_pretrained(tiny_untrained_dir)
    backend = VLLMBackend(model, tok, eos_token_ids=[-1], gpu_memory_utilization=0.2, max_model_len=128)
    prompt = tok("1+1=", add_special_tokens=False)["input_ids"]
    greedy = SamplingParams(temperature=0.0, max_tokens=4, n=1)
    out = backend.generate([prompt], greedy)
    hf = HFBackend(model, tok, eos_token_ids=[-1]).generate([prompt], greedy)
    assert out.completion_ids == hf.completion_ids and len(out.logprobs[0]) == 4
    assert out.completion_ids[0] != [0, 0, 0, 0]
    with torch.no_grad():  # every logit 0: greedy decoding then picks token 0, if the engine has the push
        model.get_output_embeddings().weight.zero_()
    assert backend.generate([prompt], greedy).completion_ids == [[0, 0, 0, 0]]
