"""PPO on agent episodes: rewards and GAE run over the generated tokens as one sequence, tool/environment
tokens get exactly zero gradient, and a short run over multi-turn episodes logs the agent figures."""

from __future__ import annotations

import json

import pytest
import torch

from reinforge.graders.base import CallableGrader
from reinforge.models.generation import HFBackend, SamplingParams
from reinforge.train.agent import AgentRunner, AgentSettings, generated_first
from reinforge.train.losses import gae, kl_penalised_rewards
from reinforge.train.optimizer import adamw
from reinforge.train.ppo import ActorCritic, PPOConfig, ppo_update, train_ppo
from reinforge.train.rollout import collect_episodes
from reinforge.train.warmup import load_model
from tests.train.test_grpo_agent import ROWS

CHATTY = "tests.train.test_grpo_agent:Chatty"  # answers turn 1, ends after turn 2


def test_rewards_and_gae_skip_the_observation_tokens():
    # generated, observation, observation, generated, generated, padding
    mask = torch.tensor([[1, 0, 0, 1, 1, 0]])
    logp, ref = torch.tensor([[-1.0, -9, -9, -1, -2, 0]]), torch.tensor([[-1.5, -7, -7, -1, -1, 0]])
    values = torch.tensor([[0.2, 5.0, 5.0, 0.1, 0.3, 0.0]])
    order = generated_first(mask)
    on = lambda x: x.gather(1, order)  # noqa: E731
    r, _ = kl_penalised_rewards(torch.tensor([1.0]), on(logp), on(ref), on(mask), beta=0.1)
    adv, _ = gae(r, on(values), on(mask), 1.0, 0.9)
    adv = adv.new_zeros(adv.shape).scatter(1, order, adv)
    # the same as the three generated tokens alone, back in their places; 0 elsewhere
    r3, _ = kl_penalised_rewards(
        torch.tensor([1.0]), logp[:, [0, 3, 4]], ref[:, [0, 3, 4]], torch.ones(1, 3), 0.1
    )
    adv3, _ = gae(r3, values[:, [0, 3, 4]], torch.ones(1, 3), 1.0, 0.9)
    torch.testing.assert_close(adv[:, [0, 3, 4]], adv3)
    assert adv[0, [1, 2, 5]].eq(0).all()
    # the score reaches the first turn across the gap (a plain masked GAE would cut the return there)
    assert adv[0, 0] > 0.5


class Recorded(ActorCritic):
    """The update's own per-token log-probs and values, with their gradients kept."""

    grads: list

    def forward(self, *args, **kwargs):
        logps, values = super().forward(*args, **kwargs)
        if logps.requires_grad:
            logps.register_hook(lambda g: self.grads.append(("logp", g.detach().clone())))
            values.register_hook(lambda g: self.grads.append(("value", g.detach().clone())))
        return logps, values


def test_ppo_gradient_is_exactly_zero_at_observation_tokens(tiny_addition_dir):
    policy, tok = load_model(str(tiny_addition_dir), trainable=True)
    ref, _ = load_model(str(tiny_addition_dir))
    runner = AgentRunner(AgentSettings(environment=CHATTY, max_episode_tokens=40), max_new_tokens=6)
    grader = CallableGrader(lambda item, sample: 1.0 + len(sample["output_text"]))  # a score, never 0
    roll = collect_episodes(
        runner, HFBackend(policy, tok), tok, grader, ROWS * 2, SamplingParams(seed=1), "p"
    )
    obs = (roll.completion_mask == 1) & (roll.loss_mask == 0)
    assert obs.sum() > 0
    ac = Recorded(policy)
    ac.grads = []
    cfg = PPOConfig(task="addition", prompts_per_step=4, num_minibatches=1, ppo_epochs=1, max_new_tokens=6)
    ppo_update(ac, ref, adamw(ac.parameters(), 1e-3, 0.0), roll, cfg, beta=0.1, step_seed=0)
    for kind, g in ac.grads:
        assert torch.all(g[obs] == 0), kind  # exactly: no policy or value gradient at observation tokens
    assert [kind for kind, _ in ac.grads] == ["logp", "value"] or [k for k, _ in ac.grads] == [
        "value",
        "logp",
    ]
    assert all((g[roll.loss_mask == 1] != 0).any() for _, g in ac.grads)  # the model's tokens do get one


def test_short_ppo_run_over_multi_turn_episodes(tmp_path, tiny_addition_dir):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 4))
    cfg = PPOConfig(
        model=str(tiny_addition_dir),
        train_file=str(data),
        output_dir=str(tmp_path / "run"),
        agent={"environment": CHATTY, "max_episode_tokens": 40},
        prompts_per_step=4,
        num_minibatches=2,
        ppo_epochs=1,
        max_new_tokens=6,
        steps=2,
        eval_interval=0,
        save_interval=0,
        progress=False,
    )
    summary = train_ppo(cfg, reward_fn=lambda item, sample: float(item["answer"] in sample["output_text"]))
    train = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").open() if '"train"' in x]
    assert [r["agent/turns_mean"] for r in train] == [2.0, 2.0]  # Chatty: two turns each
    assert summary["discarded_rollouts"] == 0 and (tmp_path / "run" / "agent.png").exists()


@pytest.mark.parametrize("mask", [[1, 1, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
def test_generated_first_is_a_permutation(mask):
    order = generated_first(torch.tensor([mask]))
    assert sorted(order[0].tolist()) == list(range(4))
    assert torch.tensor([mask]).gather(1, order)[0].tolist() == sorted(mask, reverse=True)
