"""The README's examples: their configs load as written, the openai-client job maps to the same RFT settings
as the YAML, and the own-task path (blank model -> SFT on RFT rows -> RFT) runs end to end in miniature."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from reinforge.config import load_config
from reinforge.graders import as_grader, make_sample
from reinforge.openai_compat import job_config
from reinforge.train.grpo import GRPOConfig, train_grpo
from reinforge.train.sft_trainer import SFTConfig, train_sft
from reinforge.train.warmup import parse_tiny_id

ROOT = Path(__file__).resolve().parents[2]
# the settings that decide what an RFT run learns (not where it writes or how often it reports)
TRAINING = ("model", "group_size", "prompts_per_step", "max_new_tokens", "temperature", "learning_rate",
            "lr_schedule", "warmup_steps", "loss_type", "beta", "epochs", "steps", "seed", "eval_samples",
            "eval_interval")  # fmt: skip


def openai_client_module():
    spec = importlib.util.spec_from_file_location("openai_client", ROOT / "examples/rft/openai_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openai_client_job_trains_as_the_yaml_example(monkeypatch, tmp_path):
    # the serve example used the service defaults (lr 1e-5, 1 epoch): its validation reward never moved
    monkeypatch.chdir(ROOT)
    yaml_cfg = load_config(GRPOConfig, "examples/rft/addition.yaml")
    n_rows = sum(1 for _ in open(yaml_cfg.train_file))
    job_cfg = job_config(
        openai_client_module().METHOD, yaml_cfg.model, yaml_cfg.train_file, yaml_cfg.validation_file,
        str(tmp_path / "job"), 0, n_rows,
    )  # fmt: skip
    assert {k: getattr(job_cfg, k) for k in TRAINING} == {k: getattr(yaml_cfg, k) for k in TRAINING}
    assert job_cfg.grader == json.loads(Path(yaml_cfg.grader).read_text())


def test_addition_grader_does_not_pay_for_a_single_digit():
    # the old grader's fuzzy_match (WRatio) scored "1" against "120" 0.9: RFT learned to print one digit
    grader = as_grader(str(ROOT / "examples/rft/grader.json"))
    item = {"answer": "120"}
    one_digit, near_miss, right = (grader.grade(item, make_sample(s)).reward for s in ("1", "121", "120"))
    assert one_digit < near_miss < right == 1.0


@pytest.mark.parametrize(
    "path, cls",
    [("examples/rft/addition.yaml", GRPOConfig), ("examples/rft/addition_lora.yaml", GRPOConfig),
     ("examples/own-task/sft.yaml", SFTConfig), ("examples/own-task/rft.yaml", GRPOConfig)],
)  # fmt: skip
def test_example_configs_load_and_name_existing_files(monkeypatch, path, cls):
    monkeypatch.chdir(ROOT)
    cfg = load_config(cls, path)
    for f in (cfg.train_file, cfg.validation_file, getattr(cfg, "grader", None)):
        assert f is None or Path(f).exists(), f
    assert parse_tiny_id(cfg.model) is not None or cfg.model == "runs/own-task-sft/final"


def test_own_task_blank_model_sft_then_rft_in_miniature(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    quick = ["progress=false", "eval_interval=0", "save_interval=0"]
    sft = load_config(
        SFTConfig,
        "examples/own-task/sft.yaml",
        [*quick, f"output_dir={tmp_path / 'sft'}", "steps=3", "batch_size=4"],
    )
    assert sft.model == "tiny:blank:1m" and sft.assistant_field == "answer"
    s = train_sft(sft)
    assert s["status"] == "succeeded" and s["train_examples"] == 2000
    rft = load_config(
        GRPOConfig,
        "examples/own-task/rft.yaml",
        [*quick, f"model={tmp_path / 'sft' / 'final'}", f"output_dir={tmp_path / 'rft'}", "steps=2",
         "prompts_per_step=2", "group_size=2", "eval_samples=1"],
    )  # fmt: skip
    r = train_grpo(rft)
    assert r["status"] == "succeeded" and r["steps"] == 2
    records = [json.loads(x) for x in (tmp_path / "rft" / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in records if x["kind"] == "train"]
    assert len(train) == 2 and all(x["grader/errors"] == 0 for x in train)  # the python grader ran
    assert (tmp_path / "rft" / "final" / "config.json").exists()
