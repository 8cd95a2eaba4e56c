"""Table tests of the GRPO maths against hand-computed values, and against TRL on identical tensors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from reinforge.train.losses import (
    aggregate_loss,
    clipped_policy_loss,
    group_advantages,
    kl_k3,
    pairwise_accuracy,
    pass_at_k,
)


def test_group_advantages_scaled_and_unscaled():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    # group 1: mean 0.5, sample std (n-1) = sqrt(1/3); group 2: all equal -> zero advantage
    std = math.sqrt(1 / 3)
    expected = torch.tensor(
        [
            [0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4)],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    assert torch.allclose(group_advantages(r, scale_rewards=True), expected, atol=1e-6)
    assert torch.allclose(
        group_advantages(r, scale_rewards=False), torch.tensor([[0.5, -0.5, -0.5, 0.5], [0.0] * 4])
    )


def test_kl_k3_values():
    logp = torch.tensor([[math.log(0.5), math.log(0.25)]])
    ref = torch.tensor([[math.log(0.5), math.log(0.5)]])
    # token 1: identical -> 0; token 2: q/p = 2 -> 2 - ln 2 - 1
    assert torch.allclose(kl_k3(logp, ref), torch.tensor([[0.0, 2 - math.log(2) - 1]]), atol=1e-6)
    assert (kl_k3(torch.randn(5, 7), torch.randn(5, 7)) >= 0).all()


@pytest.mark.parametrize(
    "ratio, adv, eps_low, eps_high, loss, clipped",
    [
        (1.0, 1.0, 0.2, None, -1.0, False),  # on-policy: loss = -A
        (1.5, 1.0, 0.2, None, -1.2, True),  # positive advantage, ratio above 1+eps: clipped to 1.2
        (1.5, -1.0, 0.2, None, 1.5, False),  # negative advantage: the pessimistic (unclipped) term wins
        (0.5, -1.0, 0.2, None, 0.8, True),  # negative advantage, ratio below 1-eps: clipped to 0.8
        (1.25, 1.0, 0.2, 0.28, -1.25, False),  # DAPO clip-higher lets 1.25 through
    ],
)
def test_clipped_policy_loss_table(ratio, adv, eps_low, eps_high, loss, clipped):
    logp = torch.tensor([[math.log(ratio)]])
    old = torch.zeros(1, 1)
    got, was = clipped_policy_loss(logp, old, torch.tensor([adv]), eps_low, eps_high)
    assert got.item() == pytest.approx(loss, abs=1e-6)
    assert bool(was.item()) is clipped


def test_aggregate_loss_variants():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # grpo: mean of sequence means = (2 + 4) / 2
    assert aggregate_loss(per_token, mask, "grpo").item() == pytest.approx(3.0)
    # dapo: token-level = (1+2+3+4) / 4
    assert aggregate_loss(per_token, mask, "dapo").item() == pytest.approx(2.5)
    # dr_grpo: sum / (N * max_len) = 10 / (2 * 5)
    assert aggregate_loss(per_token, mask, "dr_grpo", max_completion_length=5).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        aggregate_loss(per_token, mask, "nope")  # type: ignore[arg-type]


def test_pass_at_k():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(2, 1, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 4 * 2 / 3)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
@pytest.mark.parametrize("kl_ratio_correction", [True, False])
def test_grpo_loss_matches_trl(tiny_addition_dir, tmp_path, loss_type, kl_ratio_correction):
    """Our per-token log-probs + loss against TRL 1.16's GRPOTrainer._compute_loss on the same tensors."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reinforge.train.logprobs import per_token_logps

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_addition_dir)
    tok = AutoTokenizer.from_pretrained(tiny_addition_dir)
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=5,
        beta=0.04,
        report_to=[],
        use_cpu=True,
        bf16=False,
        loss_type=loss_type,
        epsilon=0.2,
        save_strategy="no",
        use_bias_correction_kl=kl_ratio_correction,
    )
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": "1+1"}] * 4),
        processing_class=tok,
    )
    N, P, T = 4, 6, 5
    prompt_ids = torch.randint(6, 30, (N, P))
    prompt_mask = torch.ones(
        N, P, dtype=torch.long
    )  # no padding: TRL lets HF derive positions from the cache
    completion_ids = torch.randint(6, 30, (N, T))
    completion_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]])
    adv = torch.tensor([0.7, -0.3, 1.1, -1.5])
    ids = torch.cat([prompt_ids, completion_ids], 1)
    attn = torch.cat([prompt_mask, completion_mask], 1)
    with torch.no_grad():
        current = per_token_logps(trainer.model, ids, attn, T, temperature=1.0)
    # old and reference policies a little away from the current one, so ratios hit both sides of the clip
    old = current + torch.randn(N, T) * 0.3
    ref = current + torch.randn(N, T) * 0.3
    inputs = {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": adv,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": completion_mask.sum(),
    }
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # normally set inside Trainer.train()
    trl_loss = trainer._compute_loss(trainer.model, inputs)

    logp = per_token_logps(trainer.model, ids, attn, T, temperature=1.0)
    pg, clipped = clipped_policy_loss(logp, old, adv, 0.2, 0.2)
    assert clipped[completion_mask.bool()].any() and not clipped[completion_mask.bool()].all()
    kl = kl_k3(logp, ref)
    if kl_ratio_correction:
        kl = kl * torch.exp(logp - old)
    ours = aggregate_loss(pg + 0.04 * kl, completion_mask, loss_type, max_completion_length=5)
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-4, abs=1e-5)


# ------------------------------------------------------------------ one tie rule for every accuracy metric

QUIET = {"eval_interval": 0, "save_interval": 0, "progress": False, "device": "cpu"}


def _dpo_accuracies(model, out):
    """DPO's held-out accuracy before training (policy = reference) and its first step's batch accuracy."""
    from reinforge.data.preferences import PreferencePair
    from reinforge.train.dpo import DPOConfig, train_dpo

    pairs = [
        PreferencePair([{"role": "user", "content": f"q{i}"}], "yes", "no" * (1 + i % 3)) for i in range(8)
    ]
    cfg = DPOConfig(model=str(model), output_dir=str(out), steps=1, batch_size=8, **QUIET)
    summary = train_dpo(cfg, train_pairs=pairs, val_pairs=pairs)
    first = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1]
    return [summary["val_accuracy_before"], first["rewards/accuracy"]]


def _rm_accuracies(model, out, loss):
    """The reward model's held-out and training accuracy on pairs of one response twice (every score a tie)."""
    from reinforge.data.preferences import Ranking
    from reinforge.train.reward import RMConfig, train_reward_model

    k = 3 if loss == "plackett_luce" else 2
    rows = [Ranking([{"role": "user", "content": f"p{i}"}], ["same"] * k) for i in range(4)]
    cfg = RMConfig(model=str(model), loss=loss, output_dir=str(out), steps=1, batch_size=4, **QUIET)
    summary = train_reward_model(cfg, train_rows=rows, val_rows=rows)
    first = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1]
    return [summary["val_accuracy_before"], first["rm/accuracy"]]


@pytest.mark.parametrize("metric", ["pairwise_accuracy", "dpo", "rm_bradley_terry", "rm_plackett_luce"])
def test_every_accuracy_metric_counts_ties_half(metric, tmp_path):
    """A model that cannot tell chosen from rejected scores 0.5 on every accuracy metric (DPO said 0.0
    before training, where the reward model said about 0.5 on the same pairs)."""
    from tests.helpers import micro_model

    if metric == "pairwise_accuracy":
        assert pairwise_accuracy(torch.zeros(4), torch.zeros(4)) == 0.5
        return
    model = micro_model(tmp_path / "m")
    if metric == "dpo":
        assert _dpo_accuracies(model, tmp_path / "run") == [0.5, 0.5]
    else:
        assert _rm_accuracies(model, tmp_path / "run", metric.removeprefix("rm_")) == [0.5, 0.5]
