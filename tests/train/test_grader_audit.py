"""The grader audit on a real tiny model: samples as GRPO samples, probes, flags, and the rft preflight
(audit.json, the summary, a training run left exactly as it would be without the audit)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from reinforge.graders.base import CallableGrader
from reinforge.models.generation import HFBackend
from reinforge.tasks import get_task
from reinforge.train.grader_audit import audit_grader, audit_prompts
from reinforge.train.grpo import GRPOConfig, train_grpo
from reinforge.train.warmup import load_model
from tests.train.test_grpo import small_cfg


def cfg_for(model_dir, out, **kw) -> GRPOConfig:
    """test_grpo's small run, shorter: 2 steps, no checkpoint before the end, 8 validation rows."""
    return small_cfg(model_dir, out, **{"steps": 2, "save_interval": 0, "validation_examples": 8, **kw})


def audit_of(model_dir, grader, tmp_path, **kw) -> dict:
    cfg = cfg_for(model_dir, tmp_path, **kw)
    policy, tok = load_model(str(model_dir))
    rows = audit_prompts(get_task("addition").make_rows(64, seed=0), cfg.audit_prompts, cfg.seed)
    return audit_grader(HFBackend(policy, tok), tok, grader, rows, cfg)


def test_audit_prompts_are_the_first_the_run_trains_on():
    from reinforge.train.batching import batch_indices

    rows = [{"i": i} for i in range(10)]
    first_steps = batch_indices(1, 3, 10, seed=4) + batch_indices(2, 3, 10, seed=4)  # steps 1-2, 3 per step
    assert [r["i"] for r in audit_prompts(rows, 6, seed=4)] == first_steps
    assert sorted(r["i"] for r in audit_prompts(rows, 99, seed=4)) == list(range(10))  # none twice


def test_the_addition_grader_passes_on_the_sft_model(tiny_addition_dir, tmp_path):
    report = audit_of(tiny_addition_dir, get_task("addition").grader, tmp_path)
    assert (report["prompts"], report["samples_per_prompt"], report["grades"]) == (16, 4, 64)
    assert report["reward_mean"] > 0 and report["errors"] == {} and report["failed_grades"] == 0
    assert not any(p["flagged"] for p in report["probes"].values()), report["probes"]
    assert 0 <= report["zero_variance_fraction"] < 1 and sum(report["histogram"]) == 64
    assert len(report["examples"]) == 3 and report["model"] == str(tiny_addition_dir)


def test_a_length_grader_is_flagged_on_the_sft_model(tiny_addition_dir, tmp_path):
    by_length = CallableGrader(lambda item, sample: min(1.0, len(sample["output_text"]) / 500), "verbose")
    report = audit_of(tiny_addition_dir, by_length, tmp_path, audit_prompts=8, audit_samples=2)
    assert report["grades"] == 16
    assert report["probes"]["long"] == {"reward": 1.0, "flagged": True, "errors": 0}
    assert any(w.startswith("a very long answer scores 1.00") for w in report["warnings"])


def test_rft_preflight_writes_audit_json_and_leaves_training_unchanged(tiny_addition_dir, tmp_path):
    audited = train_grpo(cfg_for(tiny_addition_dir, tmp_path / "audited"))
    report = json.loads((tmp_path / "audited" / "audit.json").read_text())
    assert audited["audit"] == {
        "reward_mean": round(report["reward_mean"], 4),
        "zero_variance_fraction": round(report["zero_variance_fraction"], 4),
        "failed_grades": 0,
        "flagged": [],
    }
    plain = train_grpo(cfg_for(tiny_addition_dir, tmp_path / "plain", audit=False))
    assert "audit" not in plain and not (tmp_path / "plain" / "audit.json").exists()
    # the audit samples with its own seed and restores the random state: training is the same step for step
    a = load_file(str(tmp_path / "audited" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "plain" / "final" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (tmp_path / "audited" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 2]  # the audit logs no step of its own


def test_a_resumed_run_reads_its_audit_back_instead_of_auditing_again(tiny_addition_dir, tmp_path):
    out = tmp_path / "run"
    train_grpo(cfg_for(tiny_addition_dir, out, save_interval=1))
    report = json.loads((out / "audit.json").read_text())
    (out / "audit.json").write_text(
        json.dumps({**report, "reward_mean": 0.123})
    )  # what a re-audit would lose
    resumed = train_grpo(cfg_for(tiny_addition_dir, out, steps=3, save_interval=1), resume=True)
    assert resumed["steps"] == 3 and resumed["audit"]["reward_mean"] == 0.123
    assert json.loads((out / "audit.json").read_text())["reward_mean"] == 0.123
