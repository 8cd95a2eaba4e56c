"""PPO maths against the published formulas (hand-computed tables), and a short run that raises reward."""

from __future__ import annotations

import json
import math

import pytest
import torch

from reinforge.train.losses import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_penalised_rewards,
    whiten,
)
from tests.helpers import digit_fraction, micro_model, prompt_rows, write_jsonl


def gae_reference(rewards, values, gamma, lam):
    """GAE straight from Schulman et al. (2016), eq. 16: A_t = sum_l (gamma lambda)^l delta_{t+l}, V after the end = 0."""
    T = len(rewards)
    v = list(values) + [0.0]
    deltas = [rewards[t] + gamma * v[t + 1] - v[t] for t in range(T)]
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(T - t)) for t in range(T)]


@pytest.mark.parametrize(
    "rewards, values, gamma, lam, expected",
    [
        # one token: A = r - V
        ([1.0], [0.25], 1.0, 0.95, [0.75]),
        # lambda = 1, gamma = 1: A_t = (sum of future rewards) - V_t (Monte Carlo)
        ([0.0, 0.0, 1.0], [0.5, 0.5, 0.5], 1.0, 1.0, [0.5, 0.5, 0.5]),
        # lambda = 0: A_t = one-step TD error r_t + gamma V_{t+1} - V_t
        ([0.0, 0.0, 1.0], [0.5, 0.25, 0.5], 0.9, 0.0, [0.9 * 0.25 - 0.5, 0.9 * 0.5 - 0.25, 0.5]),
        # by hand, gamma 0.5, lambda 0.5: deltas (-0.5, -0.5, 2) -> A = (-0.5 + 0.25*0, -0.5 + 0.25*2, 2)
        ([0.0, 0.5, 2.0], [1.0, 1.0, 0.0], 0.5, 0.5, [-0.5, 0.0, 2.0]),
    ],
)
def test_gae_table(rewards, values, gamma, lam, expected):
    adv, ret = gae(torch.tensor([rewards]), torch.tensor([values]), torch.ones(1, len(rewards)), gamma, lam)
    assert adv[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert adv[0].tolist() == pytest.approx(gae_reference(rewards, values, gamma, lam), abs=1e-6)
    assert ret[0].tolist() == pytest.approx([a + v for a, v in zip(expected, values)], abs=1e-6)


def test_gae_ignores_padding_after_the_end():
    # the second sequence ends after 2 tokens: its padded position must not leak value into the return
    r = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 9.0]])
    v = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 7.0]])
    m = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae(r, v, m, 1.0, 0.9)
    assert adv[1].tolist() == pytest.approx(gae_reference([0.0, 1.0], [0.4, 0.5], 1.0, 0.9) + [0.0], abs=1e-6)
    assert ret[1, 2].item() == 0.0


@pytest.mark.parametrize(
    "logp, old, adv, expected_loss, clipped",
    [
        (0.0, 0.0, 1.0, -1.0, False),  # ratio 1: loss = -A
        (math.log(1.5), 0.0, 1.0, -1.2, True),  # ratio 1.5, A > 0: clipped at 1.2
        (math.log(1.5), 0.0, -1.0, 1.5, False),  # ratio 1.5, A < 0: the unclipped (worse) term wins
        (math.log(0.5), 0.0, -1.0, 0.8, True),  # ratio 0.5, A < 0: clipped at 0.8
        (math.log(0.5), 0.0, 2.0, -1.0, False),  # ratio 0.5, A > 0: pessimistic min keeps 0.5 * 2
    ],
)
def test_ppo_clipped_policy_loss_table(logp, old, adv, expected_loss, clipped):
    loss, was_clipped = clipped_policy_loss(
        torch.tensor([[logp]]), torch.tensor([[old]]), torch.tensor([adv]), 0.2
    )
    assert loss.item() == pytest.approx(expected_loss, abs=1e-6)
    assert bool(was_clipped.item()) is clipped


@pytest.mark.parametrize(
    "v, v_old, ret, expected",
    [
        (1.0, 1.0, 0.0, 0.5),  # no change: 0.5 (V - R)^2
        (2.0, 1.0, 2.0, 0.5 * 0.8**2),  # V moved 1.0 towards R; clipped V = 1.2 -> the larger loss 0.32
        (0.0, 1.0, 2.0, 0.5 * 4.0),  # V moved away from R: unclipped is already the larger
        (1.1, 1.0, 0.0, 0.5 * 1.1**2),  # inside the clip range: plain loss
    ],
)
def test_clipped_value_loss_table(v, v_old, ret, expected):
    loss, _ = clipped_value_loss(torch.tensor([[v]]), torch.tensor([[v_old]]), torch.tensor([[ret]]), 0.2)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_kl_penalised_rewards_puts_score_on_last_token():
    logp = torch.tensor([[-1.0, -1.0, -1.0], [-0.5, -2.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-1.0, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards, kl = kl_penalised_rewards(torch.tensor([2.0, 3.0]), logp, ref, mask, beta=0.1)
    # row 0: kl = (0.5, 0, -0.5); row 1: kl = (0.5, -1, masked)
    assert rewards[0].tolist() == pytest.approx([-0.05, 0.0, 0.05 + 2.0])
    assert rewards[1].tolist() == pytest.approx([-0.05, 0.1 + 3.0, 0.0])
    assert kl.sum(-1).tolist() == pytest.approx([0.0, -0.5])


def test_whiten_masked():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    out = whiten(x, torch.tensor([[1, 1, 0]]))
    assert out[0, :2].tolist() == pytest.approx([-0.7071, 0.7071], abs=1e-4)
    assert out[0, 2].item() == 0.0


def test_adaptive_kl_controller_moves_towards_target():
    c = AdaptiveKLController(0.1, target=4.0, horizon=100)
    assert c.update(100.0, n_steps=10) == pytest.approx(0.1 * (1 + 0.2 * 0.1))  # error clipped at +0.2
    c2 = AdaptiveKLController(0.1, target=4.0, horizon=100)
    assert c2.update(2.0, n_steps=10) == pytest.approx(0.1 * (1 - 0.2 * 0.1))  # KL below target: beta shrinks
    assert AdaptiveKLController(0.1, 4.0, 100).update(4.0, 10) == pytest.approx(0.1)


def test_short_ppo_run_raises_reward(tmp_path):
    from reinforge.train.ppo import PPOConfig, train_ppo

    model = micro_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "prompts.jsonl", prompt_rows(64))
    cfg = PPOConfig(
        model=str(model),
        train_file=str(data),
        output_dir=str(tmp_path / "run"),
        prompts_per_step=32,
        num_minibatches=2,
        ppo_epochs=4,
        max_new_tokens=4,
        steps=12,
        learning_rate=1e-2,
        beta=0.01,
        kl_target=None,
        eval_interval=0,
        save_interval=0,
        progress=False,
        device="cpu",
    )
    summary = train_ppo(cfg, reward_fn=digit_fraction)
    rec = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scores = [r["reward/score"] for r in rec if r["kind"] == "train"]
    assert sum(scores[-3:]) / 3 > sum(scores[:3]) / 3 + 0.15, scores
    assert summary["status"] == "succeeded"
    assert (tmp_path / "run" / "final" / "value_head.pt").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")  # plain transformers loads the policy


def few_steps(tmp_path, n_prompts: int, **kw) -> dict:
    """PPOConfig fields for a run of a few 3-token steps on a micro model and ``n_prompts`` prompts."""
    data = write_jsonl(tmp_path / "prompts.jsonl", prompt_rows(n_prompts))
    return dict(
        model=str(micro_model(tmp_path / "m")),
        train_file=str(data),
        output_dir=str(tmp_path / "run"),
        ppo_epochs=1,
        max_new_tokens=3,
        eval_interval=0,
        progress=False,
        device="cpu",
        **kw,
    )


def test_ppo_resume_continues(tmp_path):
    from reinforge.train.ppo import PPOConfig, train_ppo

    base = few_steps(
        tmp_path,
        16,
        prompts_per_step=8,
        num_minibatches=2,
        steps=3,
        save_interval=1,
        critic="separate",
        kl_target=1.0,
    )
    stop_after = {"n": 0}

    def stop():
        stop_after["n"] += 1
        return stop_after["n"] == 2

    first = train_ppo(PPOConfig(**base), should_stop=stop, reward_fn=digit_fraction)
    assert first["status"] == "stopped" and first["steps"] == 2
    second = train_ppo(PPOConfig(**base), resume=True, reward_fn=digit_fraction)
    assert second["status"] == "succeeded" and second["steps"] == 3
    steps = [
        json.loads(x)["step"]
        for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if json.loads(x)["kind"] == "train"
    ]
    assert steps == [1, 2, 3]
    assert (tmp_path / "run" / "final" / "critic" / "config.json").exists()


def test_ppo_refuses_a_template_typo_and_stops_on_a_failing_grader(tmp_path):
    """As in rft: a template naming a field the rows lack fails before any model loads; a grader failing
    every grade of the first step stops the run with its kind and message (issue 14 item 2)."""
    from reinforge.graders.base import GraderError
    from reinforge.train.ppo import PPOConfig, train_ppo

    base = few_steps(tmp_path, 8, prompts_per_step=4, num_minibatches=1, steps=2, save_interval=0)
    data = base["train_file"]
    typo = {
        "type": "string_check",
        "name": "s",
        "input": "{{sample.output_text}}",
        "reference": "{{item.kk}}",
    }
    with pytest.raises(GraderError, match=f"{data}:1: grader 's' grader.reference: '{{{{item.kk}}}}'"):
        train_ppo(PPOConfig(**base, grader={**typo, "operation": "eq"}))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()

    def boom(item, sample):
        raise RuntimeError("boom")

    with pytest.raises(GraderError, match="failed on 4/4 grades at step 1 .* RuntimeError: boom"):
        train_ppo(PPOConfig(**base), reward_fn=boom)
