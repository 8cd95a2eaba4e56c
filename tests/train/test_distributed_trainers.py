"""Data parallel rm, dpo and ppo (train/distributed.py): 2 ``torchrun`` ranks (gloo) make the update one
process makes on the same global batch; the PPO minibatch rule is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from reinforge.config import load_config
from reinforge.errors import ConfigError
from tests.helpers import micro_model, prompt_rows, write_jsonl
from tests.train.test_distributed import concat, finished, launch


def test_ppo_minibatches_must_split_each_ranks_rows():
    from reinforge.train.ppo import PPOConfig, check_minibatches

    cfg = PPOConfig(task="addition", prompts_per_step=12, num_minibatches=4)  # 3 rows a minibatch alone
    check_minibatches(cfg, 1)
    check_minibatches(cfg.model_copy(update={"num_minibatches": 2}), 2)  # 6 rows a rank: 2 of 3
    with pytest.raises(ConfigError) as e:
        check_minibatches(cfg, 2)  # 6 rows a rank do not split into 4
    msg = str(e.value)
    assert "prompts_per_step=12" in msg and "num_minibatches=4" in msg and "--set prompts_per_step=8" in msg


def preference_file(path: Path, n: int) -> Path:
    """Pairs ``qK``: the longer yes preferred to the no."""
    rows = [
        {"prompt": f"q{i}", "chosen": "yes" * (1 + i % 2), "rejected": "no" * (1 + i % 3)} for i in range(n)
    ]
    return write_jsonl(path, rows)


def train_records(run: Path) -> list[dict]:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == "train"]


@pytest.mark.slow
@pytest.mark.parametrize("command, loss_key", [("rm", "loss/rm"), ("dpo", "loss/dpo")])
def test_two_rank_preference_step_is_the_one_process_step(tmp_path, command, loss_key):
    model = micro_model(tmp_path / "m")
    data = preference_file(tmp_path / "prefs.jsonl", 16)
    weights, losses = {}, {}
    for nproc in (1, 2):
        run = tmp_path / f"run{nproc}"
        cfg = dict(model=str(model), train_file=str(data), validation_file=str(data), output_dir=str(run),
                   steps=1, batch_size=8, learning_rate=1e-2, eval_interval=0, save_interval=0,
                   progress=False, device="cpu")  # fmt: skip
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
        finished(launch(tmp_path / "c.yaml", nproc, command=command))
        weights[nproc] = load_file(str(run / "final" / "model.safetensors"))
        losses[nproc] = [r[loss_key] for r in train_records(run)]  # rank 0 alone logs
    start = load_file(str(model / "model.safetensors"))
    assert max((weights[1][k] - start[k]).abs().max().item() for k in start) > 1e-4  # the step moved them
    worst = max((weights[2][k] - weights[1][k]).abs().max().item() for k in weights[1])
    assert worst < 1e-5, worst  # 2 ranks of 4 pairs: the update of 1 process with the 8 pairs
    assert len(losses[2]) == 1 and losses[2] == pytest.approx(losses[1], rel=1e-5)  # over all 8 pairs
    odd = launch(tmp_path / "c.yaml", 2, "--set", "batch_size=7", "--set", f"output_dir={tmp_path / 'odd'}",
                 command=command)  # fmt: skip
    said = odd.communicate(timeout=600)[0]  # each rank trains its block of the pairs: 7 do not split in 2
    assert odd.returncode != 0 and "batch_size=7: must be a multiple of the world size 2" in said, said


def one_process_ppo_step(config: Path) -> dict[str, torch.Tensor]:
    """PPO step 1 in this process on the completions both ranks sampled, as one batch: the policy's and
    the value head's weights."""
    from reinforge.models.generation import HFBackend
    from reinforge.train.batching import load_prompt_rows
    from reinforge.train.optimizer import adamw
    from reinforge.train.ppo import ActorCritic, PPOConfig, load_reward, ppo_update
    from reinforge.train.rollout import StepRollouts
    from reinforge.train.warmup import load_model

    cfg = load_config(PPOConfig, config, [])
    train_rows, _ = load_prompt_rows(cfg)
    torch.manual_seed(cfg.seed)
    policy, tok = load_model(cfg.model, device="cpu", trainable=True)
    ref, _ = load_model(cfg.model, device="cpu")
    ac = ActorCritic(policy)
    optim = adamw(ac.parameters(), cfg.learning_rate, cfg.weight_decay)
    backend = HFBackend(policy, tok)
    rollouts = StepRollouts(backend, load_reward(cfg), train_rows, tok, cfg)
    batch = concat([rollouts(1, 1, shard=(r, 2)) for r in range(2)], backend.pad_id)
    ppo_update(ac, ref, optim, batch, cfg, cfg.beta, step_seed=cfg.seed * 7919 + 1)
    return {
        **{k: v.detach() for k, v in policy.state_dict().items()},
        **{f"value_head.{k}": v.detach() for k, v in ac.value_head.state_dict().items()},
    }


@pytest.mark.slow
def test_two_rank_ppo_step_is_the_one_process_step(tmp_path):
    model = micro_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "prompts.jsonl", prompt_rows(16))
    grader = {"type": "text_similarity", "name": "close", "evaluation_metric": "fuzzy_match",
              "input": "{{sample.output_text}}", "reference": "say {{item.k}}"}  # fmt: skip
    cfg = dict(model=str(model), train_file=str(data), output_dir=str(tmp_path / "run"), grader=grader,
               steps=1, prompts_per_step=8, num_minibatches=1, ppo_epochs=2, max_new_tokens=4,
               learning_rate=1e-2, beta=0.05, eval_interval=0, save_interval=0, progress=False,
               device="cpu")  # fmt: skip
    config = tmp_path / "ppo.yaml"
    config.write_text(yaml.safe_dump(cfg))
    finished(launch(config, 2, command="ppo"))
    final = tmp_path / "run" / "final"
    two_ranks = load_file(str(final / "model.safetensors"))
    two_ranks.update({f"value_head.{k}": v for k, v in torch.load(final / "value_head.pt").items()})
    one = one_process_ppo_step(config)  # the same 8 completions, one process
    start = load_file(str(model / "model.safetensors"))
    assert max((two_ranks[k] - start[k]).abs().max().item() for k in start) > 1e-4  # the step moved them
    assert two_ranks["value_head.bias"].abs().item() > 1e-4  # and the value function learned
    worst = max((two_ranks[k] - one[k]).abs().max().item() for k in two_ranks)
    assert worst < 1e-5, worst  # same update (advantages whitened over both ranks), to float tolerance
    (rec,) = train_records(tmp_path / "run")  # rank 0 alone logs, over both ranks' completions
    assert rec["step"] == 1 and 0 <= rec["reward/score"] <= 1 and rec["length/mean"] > 0
