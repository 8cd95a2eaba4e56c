"""GRPO end to end on tiny models: learning, resume after SIGKILL, config mapping and errors."""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from reinforge.config import load_config
from reinforge.errors import ConfigError
from reinforge.graders.base import GraderError
from reinforge.train.grpo import GRPOConfig, train_grpo


def sevens(item, sample):
    """A trivial reward a tiny model can learn in a few steps: the share of '7's in the output."""
    text = sample["output_text"]
    return text.count("7") / max(1, len(text))


def small_cfg(model_dir, out: Path, **kw) -> GRPOConfig:
    base = dict(
        model=str(model_dir),
        task="addition",
        output_dir=str(out),
        steps=6,
        prompts_per_step=4,
        group_size=4,
        max_new_tokens=4,
        learning_rate=3e-3,
        beta=0.04,
        eval_interval=0,
        save_interval=2,
        train_examples=64,
        validation_examples=16,
        progress=False,
        keep_checkpoints=5,
    )
    base.update(kw)
    return GRPOConfig(**base)


def test_short_run_raises_validation_reward(tiny_addition_dir, tmp_path):
    cfg = small_cfg(tiny_addition_dir, tmp_path / "run", steps=12, save_interval=0, eval_interval=6)
    summary = train_grpo(cfg, reward_fn=sevens)
    assert summary["final_val_reward"] > summary["baseline_val_reward"] + 0.2
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "rewards.png", "final/config.json"):
        assert (run / name).exists(), name
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 13))
    for key in (
        "reward/mean",
        "reward/std",
        "kl/k3",
        "loss/policy",
        "clip/fraction",
        "length/mean",
        "perf/tokens_per_s",
    ):
        assert key in train[0]
    # final/ loads with plain transformers, no reinforge import needed
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(run / "final")


def _killable_run(model_dir, out, checkpointed):
    """Train until step 2's checkpoint is on disk, then tell the parent and hang in step 3's grading."""

    def sevens_until_checkpoint(item, sample):
        if (out / "checkpoints" / "step-2").exists():
            checkpointed.set()
            threading.Event().wait()  # never set: the parent kills the run here, mid-step
        return sevens(item, sample)

    train_grpo(small_cfg(model_dir, out), reward_fn=sevens_until_checkpoint)


def test_resume_after_sigkill_matches_uninterrupted(tiny_addition_dir, tmp_path):
    ref_dir, killed_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    train_grpo(small_cfg(tiny_addition_dir, ref_dir), reward_fn=sevens)

    ctx = mp.get_context("fork")
    checkpointed = ctx.Event()
    proc = ctx.Process(target=_killable_run, args=(tiny_addition_dir, killed_dir, checkpointed))
    proc.start()
    assert checkpointed.wait(timeout=600), "the run wrote no step-2 checkpoint"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert not (killed_dir / "summary.json").exists(), "the run finished before it could be killed"
    from reinforge.train.checkpoint import elapsed_seconds, latest_checkpoint

    before_kill = elapsed_seconds(latest_checkpoint(killed_dir))
    assert before_kill > 0

    summary = train_grpo(small_cfg(tiny_addition_dir, killed_dir), resume=True, reward_fn=sevens)
    assert summary["seconds"] >= round(before_kill, 1)  # time before the kill is counted too
    recs = [json.loads(x) for x in (killed_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # every step exactly once
    a = load_file(str(ref_dir / "final" / "model.safetensors"))
    b = load_file(str(killed_dir / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_existing_run_needs_resume(tiny_addition_dir, tmp_path):
    from reinforge.errors import ReinforgeError

    cfg = small_cfg(tiny_addition_dir, tmp_path / "r", steps=1)
    train_grpo(cfg, reward_fn=sevens)
    with pytest.raises(ReinforgeError, match="--resume"):
        train_grpo(cfg, reward_fn=sevens)


def test_openai_hyperparameter_names_are_mapped():
    cfg = GRPOConfig(
        task="addition",
        learning_rate=1e-4,
        group_size=8,
        hyperparameters={
            "n_epochs": 2,
            "batch_size": 4,
            "learning_rate_multiplier": 0.5,
            "eval_interval": 7,
            "eval_samples": 3,
            "seed": 9,
            "compute_multiplier": 2.0,
        },
    )
    assert (cfg.epochs, cfg.prompts_per_step, cfg.eval_interval, cfg.eval_samples, cfg.seed) == (
        2,
        4,
        7,
        3,
        9,
    )
    assert cfg.learning_rate == pytest.approx(5e-5)
    assert cfg.group_size == 16
    assert GRPOConfig(task="addition", hyperparameters={"batch_size": "auto"}).prompts_per_step == 8


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"task": "addition", "lerning_rate": 1}, "lerning_rate: unknown key"),  # typo
        ({"task": "addition", "group_size": "many"}, "group_size"),  # wrong type
        ({"task": "addition", "group_size": 1}, "group_size=1"),  # GRPO needs a group
        ({}, "train_file"),  # no data at all
        ({"task": "addition", "hyperparameters": {"n_epoch": 3}}, "n_epoch"),  # unknown OpenAI name
        ({"task": "addition", "steps": 8, "schedule_steps": 4}, "schedule_steps=4"),  # LR schedule too short
    ],
)
def test_bad_config_names_the_key(data, needle):
    with pytest.raises(ConfigError) as e:
        load_config(GRPOConfig, data)
    assert needle in str(e.value)


def test_grader_errors_score_zero_and_training_goes_on(tiny_addition_dir, tmp_path):
    calls = itertools.count()

    def flaky(item, sample):  # every third grade raises, every third is NaN, the rest score 1
        n = next(calls) % 3
        if n == 0:
            raise RuntimeError("boom")
        return float("nan") if n == 1 else 1.0

    summary = train_grpo(
        small_cfg(tiny_addition_dir, tmp_path / "r", steps=2, save_interval=0), reward_fn=flaky
    )
    assert summary["status"] == "succeeded"
    recs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]  # training went on past the errors
    assert all(r["grader/errors"] > 0 for r in train)  # errors and NaNs are counted, not dropped
    assert all(r["reward/mean"] < 1.0 for r in train)  # ... and scored zero
    assert summary["grader_errors"] == sum(r["grader/errors"] for r in train)
    assert summary["first_grader_error"]["step"] == 1


def test_lora_run_trains_adapters_and_saves_merged_final(tiny_addition_dir, tmp_path):
    cfg = small_cfg(
        tiny_addition_dir,
        tmp_path / "lora",
        steps=2,
        save_interval=0,
        lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    )
    train_grpo(cfg, reward_fn=sevens)
    final = load_file(str(tmp_path / "lora" / "final" / "model.safetensors"))
    assert not any("lora" in k for k in final)  # merged: plain transformers weights
    base = load_file(str(Path(tiny_addition_dir) / "model.safetensors"))
    changed = [k for k in base if "q_proj" in k and not torch.equal(base[k], final[k])]
    assert changed, "LoRA updates should be merged into the saved q_proj weights"


# -- a grader that fails on every row stops the run (issue 14 item 2)

TYPO_GRADER = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answr}}",  # the rows' field is `answer`
    "operation": "eq",
}
STRING_GRADER = {
    "type": "python",
    "name": "strgrader",
    "source": "def grade(sample, item):\n    return 'oops'\n",
}


def rft_cli(model_dir, tmp_path: Path, grader: dict) -> subprocess.CompletedProcess:
    """``reinforge rft`` on 8 addition rows in JSONL with ``grader``, as a user runs it."""
    rows = [
        {"messages": [{"role": "user", "content": f"{a}+{a}"}], "answer": str(2 * a)} for a in range(10, 18)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "grader.json").write_text(json.dumps(grader))
    cfg = {
        "model": str(model_dir),
        "train_file": str(tmp_path / "train.jsonl"),
        "grader": str(tmp_path / "grader.json"),
        "output_dir": str(tmp_path / "run"),
        **dict(steps=2, prompts_per_step=2, group_size=4, max_new_tokens=4, eval_interval=0, save_interval=1),
    }
    (tmp_path / "rft.yaml").write_text(yaml.safe_dump(cfg))
    args = [sys.executable, "-m", "reinforge.cli", "rft", str(tmp_path / "rft.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)


def test_template_typo_is_refused_before_training(tiny_addition_dir, tmp_path):
    out = rft_cli(tiny_addition_dir, tmp_path, TYPO_GRADER)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert (
        f"{tmp_path / 'train.jsonl'}:1: grader 'exact' grader.reference: '{{{{item.answr}}}}'" in out.stderr
    )
    assert "no field 'answr'" in out.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing ran


def test_grader_failing_every_grade_stops_rft(tiny_addition_dir, tmp_path):
    out = rft_cli(tiny_addition_dir, tmp_path, STRING_GRADER)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "grader 'strgrader' failed on 8/8 grades at step 1" in out.stderr
    assert "python_grader_runtime_error: grade() returned str 'oops'" in out.stderr
    run = tmp_path / "run"
    assert not (run / "summary.json").exists() and not (run / "checkpoints").exists()
    # the run directory is that of a run killed before its first checkpoint: a plain rerun starts afresh
    fixed = {**TYPO_GRADER, "reference": "{{item.answer}}"}
    cfg = load_config(GRPOConfig, tmp_path / "rft.yaml", []).model_copy(
        update={"grader": fixed, "progress": False}
    )
    assert train_grpo(cfg)["status"] == "succeeded"


def test_grader_errors_in_summary_and_a_later_stop_is_resumable(tiny_addition_dir, tmp_path):
    def boom(item, sample):
        raise RuntimeError("boom")

    # tolerated: every grade fails, the run goes on, the summary counts them and names the first
    cfg = small_cfg(tiny_addition_dir, tmp_path / "tolerant", steps=2, max_grader_error_fraction=1.0)
    summary = train_grpo(cfg, reward_fn=boom)
    assert summary["status"] == "succeeded" and summary["grader_errors"] == 2 * 16
    assert summary["first_grader_error"] == {
        "step": 1,
        "kind": "python_grader_runtime_error",
        "message": "RuntimeError: boom",
    }
    # a grader that breaks at step 3 stops the run after 3 failed steps in a row; --resume finishes it
    done = {"step": 0}

    def breaks_at_step_3(item, sample):
        if done["step"] >= 2:
            raise RuntimeError("boom")
        return sevens(item, sample)

    def on_step(rec):
        done["step"] = rec["step"] if rec["kind"] == "train" else done["step"]

    run = tmp_path / "breaks"
    with pytest.raises(GraderError, match=r"at step 5 \(3 steps in a row"):
        train_grpo(small_cfg(tiny_addition_dir, run), on_step=on_step, reward_fn=breaks_at_step_3)
    assert not (run / "summary.json").exists() and (run / "checkpoints" / "step-4").exists()
    summary = train_grpo(small_cfg(tiny_addition_dir, run), resume=True, reward_fn=sevens)
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 4, 5, 6, 6] and summary["status"] == "succeeded"
