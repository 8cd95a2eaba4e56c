"""Precision and memory (train/precision.py): fp32 master weights with bf16 autocast compute, and gradient
checkpointing, on the CPU (where the same code paths run as on CUDA)."""

from __future__ import annotations

import pytest
import torch
import yaml
from safetensors.torch import load_file

from reinforge.config import load_config
from reinforge.errors import ConfigError
from reinforge.train.grpo import GRPOConfig, build_policy, grpo_update, load_grader, train_grpo
from reinforge.train.precision import autocast, check_precision, enable_gradient_checkpointing


@pytest.mark.parametrize(
    "data, dtype",
    [
        ({"precision": "bf16"}, "float32"),  # fp32 master weights
        ({"precision": "fp32", "dtype": "float32"}, "float32"),  # said twice: fine
        ({"precision": "auto", "dtype": "bfloat16"}, "bfloat16"),  # auto: the dtype key rules
        ({}, None),  # nothing said: nothing derived
    ],
)
def test_precision_derives_the_weights_dtype(data, dtype):
    assert check_precision(data, has_dtype=True).get("dtype") == dtype


def test_bf16_weights_with_mixed_precision_are_refused(tmp_path):
    path = tmp_path / "rft.yaml"
    path.write_text("task: addition\nprecision: bf16\ndtype: bfloat16\n")
    with pytest.raises(ConfigError) as e:
        load_config(GRPOConfig, path, [])
    assert "precision=bf16 with dtype=bfloat16" in str(e.value) and "drop dtype" in str(e.value)


def cfg_for(model_dir, tmp_path, **kw) -> GRPOConfig:
    base = dict(
        model=str(model_dir),
        task="addition",
        output_dir=str(tmp_path / "run"),
        steps=1,
        prompts_per_step=2,
        group_size=4,
        max_new_tokens=4,
        learning_rate=1e-3,
        train_examples=16,
        validation_examples=2,
        eval_interval=0,
        save_interval=0,
        audit=False,
        progress=False,
    )
    return GRPOConfig(**{**base, **kw})


def one_update(cfg: GRPOConfig, precision: str = "auto", checkpointing: bool = False):
    """(weights after one GRPO update, dtypes of the MLP outputs, MLP forwards in the update, optimizer)."""
    from reinforge.models.vllm_backend import make_backend
    from reinforge.train.batching import load_prompt_rows
    from reinforge.train.optimizer import adamw
    from reinforge.train.rollout import StepRollouts

    rows, _ = load_prompt_rows(cfg)
    torch.manual_seed(cfg.seed)
    policy, ref, tok = build_policy(cfg)
    roll = StepRollouts(make_backend("hf", policy, tok), load_grader(cfg), rows, tok, cfg)(1, cfg.group_size)
    if checkpointing:
        enable_gradient_checkpointing(policy)
    optim = adamw(policy.parameters(), cfg.learning_rate, cfg.weight_decay)
    seen: list[torch.dtype] = []  # each time the first layer's MLP runs (a recompute stops early inside it)
    proj = policy.model.layers[0].mlp.gate_proj
    hook = proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with autocast(precision, policy):
        grpo_update(policy, ref, optim, roll, cfg, step_seed=1)
    hook.remove()
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}, seen, optim


def test_bf16_computes_in_bf16_over_fp32_master_weights(tiny_addition_dir, tmp_path):
    cfg = cfg_for(tiny_addition_dir, tmp_path, precision="bf16")
    weights, seen, optim = one_update(cfg, "bf16")
    assert seen and set(seen) == {torch.bfloat16}  # the compute: bf16
    assert {v.dtype for v in weights.values()} == {torch.float32}  # the master weights: fp32
    states = [s for s in optim.state.values() if "exp_avg" in s]
    assert states and all(s["exp_avg"].dtype == torch.float32 for s in states)
    fp32, seen32, _ = one_update(cfg_for(tiny_addition_dir, tmp_path, precision="fp32"), "fp32")
    assert set(seen32) == {torch.float32}  # fp32 throughout
    assert weights.keys() == fp32.keys()


@pytest.mark.parametrize("forward", ["packed", "padded"])  # ours, and the model's own forward
def test_gradient_checkpointing_recomputes_layers_to_the_same_update(tiny_addition_dir, tmp_path, forward):
    cfg = cfg_for(tiny_addition_dir, tmp_path, logprob_forward=forward, beta=0.0)
    plain, calls, _ = one_update(cfg)
    recomputed, calls_ckpt, _ = one_update(cfg, checkpointing=True)
    assert len(calls_ckpt) > len(calls)  # the layer ran again in the backward
    for k in plain:
        torch.testing.assert_close(recomputed[k], plain[k], rtol=1e-5, atol=1e-6)


def test_rft_run_with_bf16_precision_and_checkpointing(tiny_addition_dir, tmp_path):
    summary = train_grpo(
        cfg_for(tiny_addition_dir, tmp_path, precision="bf16", gradient_checkpointing=True, steps=2)
    )
    assert summary["status"] == "succeeded" and summary["steps"] == 2
    final = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert {v.dtype for v in final.values()} == {torch.float32}
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["precision"] == "bf16" and cfg["dtype"] == "float32"
