"""GRPO on agent episodes: tool/environment tokens out of the loss, advantages over kept episodes, the
truncation rules, and a short RFT run that raises the reward of single-turn function calling."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch
import yaml

from reinforge.agents.calls import ParsedTurn
from reinforge.agents.environment import StepResult
from reinforge.graders.base import CallableGrader
from reinforge.models.generation import HFBackend, SamplingParams
from reinforge.train import grpo
from reinforge.train.agent import AgentRunner, AgentSettings, kept_group_advantages
from reinforge.train.grpo import GRPOConfig, grpo_update, train_grpo
from reinforge.train.losses import group_advantages
from reinforge.train.optimizer import adamw
from reinforge.train.rollout import collect_episodes
from reinforge.train.warmup import load_model

ROWS = [{"messages": [{"role": "user", "content": f"{a}+{a}="}], "answer": str(2 * a)} for a in (3, 14)]


class Chatty:
    """An environment that answers the first turn with a user message and ends after the second: every
    episode has observation tokens between two generated turns."""

    seen: list[str] = []  # the rollout ids environments were built with

    def __init__(self, row: dict, rollout_id: str):
        self.turns = 0
        Chatty.seen.append(rollout_id)

    def reset(self, row: dict) -> list[dict]:
        return row["messages"]

    def step(self, action: ParsedTurn) -> StepResult:
        self.turns += 1
        return StepResult("again: " + action.content[:4], done=self.turns == 2)


@pytest.mark.parametrize(
    "rewards, keep, scale, expected",
    [
        # every episode kept: GRPO's own advantage
        ([[1.0, 0.0, 0.5]], [[True] * 3], True, None),
        # the discarded one is out of the mean and gets 0
        ([[1.0, 0.0, 9.0]], [[True, True, False]], False, [[0.5, -0.5, 0.0]]),
        # one kept episode has nothing to compare with: 0
        ([[1.0, 5.0]], [[True, False]], True, [[0.0, 0.0]]),
    ],
)
def test_kept_group_advantages(rewards, keep, scale, expected):
    r, k = torch.tensor(rewards), torch.tensor(keep)
    want = group_advantages(r, scale) if expected is None else torch.tensor(expected)
    torch.testing.assert_close(kept_group_advantages(r, k, scale), want)


def test_loss_gradient_is_exactly_zero_at_observation_tokens(tiny_addition_dir, monkeypatch):
    policy, tok = load_model(str(tiny_addition_dir), trainable=True)
    ref = copy.deepcopy(policy).requires_grad_(False)
    settings = AgentSettings(environment=f"{__name__}:Chatty", max_episode_steps=3, max_episode_tokens=40)
    runner = AgentRunner(settings, max_new_tokens=6)
    grader = CallableGrader(
        lambda item, sample: float(item["answer"] in sample["output_text"]) + len(sample["output_text"]) / 10
    )
    params = SamplingParams(temperature=1.0, n=4, seed=3)
    roll = collect_episodes(runner, HFBackend(policy, tok), tok, grader, ROWS, params, "t")
    obs = (roll.completion_mask == 1) & (roll.loss_mask == 0)  # tool/environment tokens inside episodes
    assert obs.sum() > 0 and roll.rewards.std() > 0

    grads: list[torch.Tensor] = []

    class Recorded(grpo.RolloutLogps):  # the update's own per-token log-probs, with their gradient kept
        def __call__(self, model, rows):
            out = super().__call__(model, rows)
            if out.requires_grad:
                out.register_hook(lambda g: grads.append(g.detach().clone()))
            return out

    monkeypatch.setattr(grpo, "RolloutLogps", Recorded)
    cfg = GRPOConfig(task="addition", group_size=4, prompts_per_step=2, beta=0.1, logprob_forward="padded")
    grpo_update(policy, ref, adamw(policy.parameters(), 1e-3, 0.0), roll, cfg, step_seed=0)
    (g,) = grads  # one micro-batch: the whole batch
    assert torch.all(g[obs] == 0)  # exactly: no policy-loss or KL gradient at observation tokens
    assert torch.all(g[roll.completion_mask == 0] == 0)  # nor at padding
    assert (g[roll.loss_mask == 1] != 0).any()  # the model's own tokens do get one


@pytest.mark.parametrize("rule, kept", [("zero", True), ("discard", False)])
def test_truncated_episodes_follow_on_truncated(tiny_addition_dir, rule, kept):
    policy, tok = load_model(str(tiny_addition_dir))
    # Chatty answers the first turn; one turn allowed: every episode is cut by max_episode_steps
    settings = AgentSettings(environment=f"{__name__}:Chatty", max_episode_steps=1, on_truncated=rule)
    grader = CallableGrader(lambda item, sample: 1.0)
    roll = collect_episodes(
        AgentRunner(settings, 6), HFBackend(policy, tok), tok, grader, ROWS, SamplingParams(n=2, seed=0), "t"
    )
    assert roll.agent["agent/truncated"] == 4 and roll.rewards.eq(0).all()  # scored 0, never graded
    assert roll.keep.eq(kept).all()
    assert roll.loss_mask.sum() == (roll.completion_mask.sum() if kept else 0)


@pytest.mark.parametrize(
    "agent, message",
    [
        ({"tools": [{"name": "calc"}]}, "agent: tools[0]: give 'server_url'"),
        ({"environment": "no_such_module:make"}, "agent.environment: cannot load 'no_such_module:make'"),
        ({"max_episode_steps": 0}, "agent.max_episode_steps=0: must be >= 1"),
        ({"on_truncated": "keep"}, "agent.on_truncated"),
    ],
)
def test_bad_agent_config_is_one_line_naming_the_key(tmp_path, agent, message):
    from reinforge.config import load_config
    from reinforge.errors import ConfigError

    path = tmp_path / "rft.yaml"
    path.write_text(yaml.safe_dump({"task": "addition", "agent": agent}))
    with pytest.raises(ConfigError) as e:
        load_config(GRPOConfig, path, [])
    assert message in str(e.value) and "\n" not in str(e.value).strip()


# ------------------------------------------------------------------------ single-turn function calling

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "a + b",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
    },
}


def sum_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    pairs = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(n)]
    return [{"messages": [{"role": "user", "content": f"{a} plus {b}"}], "a": a, "b": b} for a, b in pairs]


def demonstration(row: dict, rng: random.Random) -> dict:
    """Half the demonstrations call ``add``, half answer in text, at random: the SFT'd model calls the
    tool about half the time on any prompt, so every group has something to compare."""
    if rng.random() < 0.5:
        answer = {"role": "assistant", "content": str(row["a"] + row["b"])}
    else:
        call = {"type": "function", "function": {"name": "add", "arguments": {"a": row["a"], "b": row["b"]}}}
        answer = {"role": "assistant", "content": "", "tool_calls": [call]}
    return {"messages": row["messages"] + [answer]}


def calls_add(item: dict, sample: dict) -> float:
    """The grader: 1 for exactly one well-formed call of ``add`` (read from ``sample.output_tools``)."""
    tools = sample["output_tools"]
    return float(len(tools) == 1 and tools[0]["function"]["name"] == "add")


@pytest.fixture(scope="module")
def tool_caller_dir(tmp_path_factory):
    """A 1m tiny model SFT'd 100 steps on the demonstrations (calls ``add`` about half the time)."""
    from reinforge.models.tiny import build_model, build_tokenizer, save_tiny
    from reinforge.train.sft import sft_warmup

    tok = build_tokenizer()
    model = build_model("1m", 0, len(tok))
    rng = random.Random(0)
    sft_warmup(model, tok, [demonstration(r, rng) for r in sum_rows(256, 1)], steps=100, batch_size=16)
    return save_tiny(model, tok, tmp_path_factory.mktemp("tool-caller") / "sft")


@pytest.mark.slow  # ~2 minutes on 2 busy cores (SFT 100 steps, then 6 RFT steps)
def test_rft_raises_the_reward_of_single_turn_function_calling(tmp_path, tool_caller_dir):
    for name, rows in (("train", sum_rows(128, 2)), ("val", sum_rows(32, 3))):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = GRPOConfig(
        model=str(tool_caller_dir),
        train_file=str(tmp_path / "train.jsonl"),
        validation_file=str(tmp_path / "val.jsonl"),
        output_dir=str(tmp_path / "rft"),
        agent={},  # single-turn: calls parsed and graded, none run
        steps=6,
        group_size=4,
        prompts_per_step=8,
        max_new_tokens=80,
        temperature=0.7,
        learning_rate=3e-4,
        beta=0.0,
        eval_interval=3,
        eval_samples=4,
        save_interval=0,
        progress=False,
        audit=False,
    )
    summary = train_grpo(cfg, reward_fn=calls_add)
    evals = [r for r in map(json.loads, (tmp_path / "rft" / "metrics.jsonl").open()) if r["kind"] == "eval"]
    first, last = evals[0]["eval/sample_reward_mean"], evals[-1]["eval/sample_reward_mean"]
    assert last >= first + 0.2, (first, last)  # measured: 0.53 -> 0.92
    assert summary["valid_call_rate"] > 0.8 and summary["discarded_rollouts"] == 0
    assert (tmp_path / "rft" / "agent.png").exists()


def test_rollout_ids_are_unique_per_episode_and_run(tiny_addition_dir):
    policy, tok = load_model(str(tiny_addition_dir))
    backend, grader = HFBackend(policy, tok), CallableGrader(lambda item, sample: 0.0)
    Chatty.seen.clear()
    for _ in range(2):  # two runs, the same step
        runner = AgentRunner(AgentSettings(environment=f"{__name__}:Chatty", max_episode_steps=1), 2)
        collect_episodes(runner, backend, tok, grader, ROWS, SamplingParams(n=2, seed=0), "step1")
    assert len(Chatty.seen) == 8 and len(set(Chatty.seen)) == 8


def test_short_rft_run_over_multi_turn_episodes_logs_the_agent_figures(tmp_path, tiny_addition_dir):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 4))
    cfg = GRPOConfig(
        model=str(tiny_addition_dir),
        train_file=str(data),
        validation_file=str(data),
        output_dir=str(tmp_path / "run"),
        agent={"environment": f"{__name__}:Chatty", "max_episode_tokens": 40},
        steps=2,
        group_size=2,
        prompts_per_step=2,
        max_new_tokens=6,
        eval_interval=0,
        save_interval=0,
        progress=False,
        audit=False,
    )
    summary = train_grpo(cfg, reward_fn=lambda item, sample: float(item["answer"] in sample["output_text"]))
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").open()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["agent/turns_mean"] for r in train] == [2.0, 2.0]  # Chatty: two turns each
    assert all(r["agent/tokens_mean"] > r["agent/generated_tokens_mean"] for r in train)  # observations
    assert records[-1]["kind"] == "eval" and records[-1]["eval/agent/turns_mean"] == 2.0
    assert summary["discarded_rollouts"] == 0 and summary["truncated_episodes"] >= 0
    assert (tmp_path / "run" / "agent.png").exists()


def add(a: int, b: int) -> int:
    """A Python tool: ``agent.tools: [{python: tests.train.test_grpo_agent:add}]``."""
    return a + b


def test_python_tools_run_and_their_schemas_are_offered():
    from tests.agents.test_episode import CALL, EOS, TOK, ScriptedBackend, ids_of

    backend = ScriptedBackend([ids_of(CALL) + [EOS], ids_of("5") + [EOS]])
    settings = AgentSettings(tools=[{"python": f"{__name__}:add"}], max_episode_tokens=400)
    runner = AgentRunner(settings, max_new_tokens=128)
    row = {"messages": [{"role": "user", "content": "2+3?"}], "answer": "5"}  # no tools of its own
    grader = CallableGrader(lambda item, sample: float(sample["output_text"] == item["answer"]))
    roll = collect_episodes(runner, backend, TOK, grader, [row], SamplingParams(n=1), "t")
    assert '"name": "add"' in TOK.decode(backend.prompts[0][0])  # the tool's schema is in the prompt
    assert "<tool_response>5</tool_response>" in TOK.decode(backend.prompts[1][0])  # the tool ran
    assert roll.rewards.item() == 1.0 and roll.agent["agent/tool_calls_mean"] == 1
    assert roll.agent["agent/tool_errors"] == 0 and roll.agent["agent/tool_seconds_max"] > 0
