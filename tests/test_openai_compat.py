"""One mapping of OpenAI's job shapes: a job resolves to the config the CLI builds from the same settings."""

from __future__ import annotations

import json
import math

import pytest

from reinforge.config import load_config
from reinforge.errors import ConfigError
from reinforge.openai_compat import (
    SERVICE_RUN,
    SERVICE_RUN_RFT,
    job_config,
    planned_steps,
    run_training,
    stored_config,
)
from reinforge.train.dpo import DPOConfig
from reinforge.train.grpo import GRPOConfig
from reinforge.train.sft_trainer import SFTConfig
from tests.serve.helpers import STRING_CHECK as GRADER

# how the service runs a job, not what it learns: the only fields a job and the CLI may differ in
RUN_ONLY = {
    *SERVICE_RUN,
    *SERVICE_RUN_RFT,
    "output_dir",
    "save_interval",
    "eval_interval",
    "validation_split",
}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def files(tmp_path):
    chat = [
        {"messages": [{"role": "user", "content": f"{i}+1"}, {"role": "assistant", "content": "x"}]}
        for i in range(12)
    ]
    pairs = [{"prompt": f"p{i}", "chosen": "a", "rejected": "b"} for i in range(12)]
    return {
        "chat": write(tmp_path / "chat.jsonl", chat),
        "pairs": write(tmp_path / "pairs.jsonl", pairs),
    }


def training_fields(cfg) -> dict:
    return {k: v for k, v in cfg.model_dump().items() if k not in RUN_ONLY}


def test_rft_job_resolves_to_the_cli_config_of_the_same_yaml(files, tmp_path):
    hp = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 3, "compute_multiplier": 0.5}
    extension = {"max_new_tokens": 5, "learning_rate": 1e-4, "loss_type": "dapo"}
    method = {"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": hp}}
    job = job_config({**method, "reinforge": extension}, "tiny:addition:1m", files["chat"], None, "j", 7, 12)
    yaml = {"model": "tiny:addition:1m", "train_file": files["chat"], "grader": GRADER, "seed": 7}
    cli = load_config(GRPOConfig, {**yaml, **extension, "hyperparameters": hp})
    assert training_fields(job) == training_fields(cli)
    assert (job.learning_rate, job.group_size, job.prompts_per_step) == (pytest.approx(3e-4), 4, 4)


def test_rft_jobs_skip_the_grader_audit_unless_the_method_asks(files):
    method = {"type": "reinforcement", "reinforcement": {"grader": GRADER}}
    assert job_config(method, "tiny:addition:1m", files["chat"], None, "j", 7, 12).audit is False
    asked = {**method, "reinforge": {"audit": True}}
    assert job_config(asked, "tiny:addition:1m", files["chat"], None, "j", 7, 12).audit is True


@pytest.mark.parametrize(
    "kind,cls,data",
    [
        (
            "supervised",
            SFTConfig,
            "chat",
        ),  # the service trained at 1e-4, batch 8, 3 epochs (CLI: 2e-5, 32, 1)
        ("dpo", DPOConfig, "pairs"),  # the service trained at 1e-5, batch 8, 3 epochs (CLI: 5e-6, 16, 1)
    ],
)
def test_sft_and_dpo_jobs_train_at_the_cli_defaults(files, kind, cls, data):
    job = job_config({"type": kind}, "tiny:addition:1m", files[data], None, "j", 0, 12)
    cli = cls(model="tiny:addition:1m", train_file=files[data])
    assert training_fields(job) == training_fields(cli)
    assert (job.learning_rate, job.batch_size, job.epochs) == (cli.learning_rate, cli.batch_size, 1.0)
    hp = {"learning_rate_multiplier": 2, "n_epochs": 3}
    job = job_config(
        {"type": kind, kind: {"hyperparameters": hp}}, "tiny:addition:1m", files[data], None, "j", 0, 12
    )
    assert (job.learning_rate, job.epochs) == (2 * cli.learning_rate, 3.0)


def test_a_packed_sft_jobs_cadence_counts_the_steps_the_trainer_runs(files, tiny_untrained_dir, tmp_path):
    # packing puts several of the 12 short rows into each 48-token row and the trainer steps over those;
    # the service counted rows (12 / batch 2 = 6 steps), so it checkpointed every 2 steps, not about 3 times
    method = {
        "type": "supervised",
        "supervised": {"hyperparameters": {"batch_size": 2}},
        "reinforge": {"packing": True, "max_length": 48},
    }
    cfg = job_config(method, str(tiny_untrained_dir), files["chat"], None, str(tmp_path / "run"), 0, 12)
    summary = run_training(cfg, False, lambda rec: None, lambda: False)
    assert 1 < summary["steps"] == planned_steps(cfg, 12) < 6
    assert cfg.save_interval == math.ceil(summary["steps"] / 3)
    assert cfg.eval_interval == math.ceil(summary["steps"] / 10)


def test_stored_config_round_trips(files):
    method = {
        "type": "reinforcement",
        "reinforcement": {"grader": GRADER, "hyperparameters": {"batch_size": 2}},
    }
    cfg = job_config(method, "tiny:addition:1m", files["chat"], None, "j", 0, 12)
    assert stored_config(method, json.loads(json.dumps(cfg.model_dump(mode="json")))) == cfg


AGENT_ENV = {"environment": "reinforge.agents.environment:SimulatedUser"}
ENDPOINT = {
    "name": "calculator",
    "server_url": "http://127.0.0.1:9/calc",
    "headers": {"Authorization": "Bearer t"},
}


def test_agent_rft_tools_and_max_episode_steps_become_the_agent_section(files):
    body = {"grader": GRADER, "tools": [ENDPOINT], "max_episode_steps": 3}
    cfg = job_config(
        {"type": "reinforcement", "reinforcement": body}, "tiny:addition:1m", files["chat"], None, "j", 0, 12
    )
    assert cfg.agent is not None and (cfg.agent.tools, cfg.agent.max_episode_steps) == ([ENDPOINT], 3)
    # method.reinforge.agent sets the other agent keys; Agent RFT's keys win over it
    extension = {"agent": {"max_tool_calls": 2, "max_episode_steps": 9}}
    method = {"type": "reinforcement", "reinforcement": body, "reinforge": extension}
    cfg = job_config(method, "tiny:addition:1m", files["chat"], None, "j", 0, 12)
    assert (cfg.agent.max_tool_calls, cfg.agent.max_episode_steps) == (2, 3)


@pytest.mark.parametrize(
    "method,needle",
    [
        ({"type": "rlhf"}, "method.type 'rlhf': must be one of"),
        ({"type": "reinforcement"}, "method.reinforcement.grader: required"),
        # a string would be read as a path on the server
        ({"type": "reinforcement", "reinforcement": {"grader": "/etc/grader.json"}}, "grader JSON object"),
        (
            {"type": "reinforcement", "reinforcement": {"grader": {**GRADER, "operation": "is"}}},
            "method.reinforcement: grader: operation: 'is'; use eq, ne, like or ilike",
        ),
        (
            {"type": "dpo", "dpo": {"hyperparameters": {"warp": 9}}},
            "method.dpo.hyperparameters.warp: unknown",
        ),
        (
            {"type": "supervised", "reinforge": {"output_dir": "/tmp/x"}},
            "method.reinforge.output_dir: set by",
        ),
        ({"type": "supervised", "reinforge": {"lerning_rate": 1}}, "method: lerning_rate: unknown key"),
        # the service calls tools over HTTP only: a Python tool or environment would run code in the worker
        (
            {
                "type": "reinforcement",
                "reinforcement": {"grader": GRADER, "tools": [{"python": "os:system"}]},
            },
            "method.reinforcement.tools[0]: the service calls tools over HTTP only",
        ),
        (
            {"type": "reinforcement", "reinforcement": {"grader": GRADER}, "reinforge": {"agent": AGENT_ENV}},
            "method.reinforge.agent.environment: not available in the service",
        ),
        (
            {"type": "reinforcement", "reinforcement": {"grader": GRADER, "tools": {"name": "calc"}}},
            "method.reinforcement.tools: must be a list",
        ),
        # named where the job wrote it (it read "method: agent: agent.max_episode_steps=0")
        (
            {"type": "reinforcement", "reinforcement": {"grader": GRADER, "max_episode_steps": 0}},
            "method.reinforcement: agent.max_episode_steps=0: must be >= 1",
        ),
    ],
)
def test_bad_job_is_one_config_error_naming_the_key(files, method, needle):
    with pytest.raises(ConfigError) as e:
        job_config(method, "tiny:addition:1m", files["chat"], None, "j", 0, 12)
    assert needle in str(e.value)
