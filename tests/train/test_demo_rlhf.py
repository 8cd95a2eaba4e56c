"""`reinforge demo rlhf --quick` end to end (slow: a few minutes on 2 cores)."""

from __future__ import annotations

import pytest

KEYS = [
    "rm_val_accuracy",
    "gold_reward_before",
    "gold_reward_after_ppo",
    "gold_reward_after_dpo",
    "kl_after_ppo",
    "kl_target",
    "seconds",
]


@pytest.mark.slow
def test_quick_demo_writes_summary_and_plot(tmp_path):
    import json

    from reinforge.demo_rlhf import run_demo_rlhf

    summary = run_demo_rlhf(tmp_path / "demo", quick=True)
    on_disk = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert all(on_disk[k] == summary[k] for k in KEYS) and on_disk["quick"] is True
    assert (tmp_path / "demo" / "beta_sweep.png").stat().st_size > 1000
    assert summary["beta_sweep"][0]["beta"] == "adaptive"
    # the figures are the stage runs' own: the RM's and DPO's summaries, PPO's first and last evaluation
    run = tmp_path / "demo"
    rm, dpo = (json.loads((run / name / "summary.json").read_text()) for name in ("rm", "dpo"))
    assert summary["rm_val_accuracy"] == rm["val_accuracy"] and 0 <= rm["val_accuracy"] <= 1
    assert summary["gold_reward_after_dpo"] == dpo["final_val_reward"]
    assert summary["kl_after_dpo"] == dpo["final_kl"] and summary["kl_target"] == 4.0
    ppo = [json.loads(x) for x in (run / "ppo" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in ppo if r.get("kind") == "eval"]
    assert len(evals) >= 2 and evals[0]["step"] < evals[-1]["step"]
    assert (summary["gold_reward_before"], summary["gold_reward_after_ppo"]) == (
        evals[0]["eval/eval_grader_mean"],
        evals[-1]["eval/eval_grader_mean"],
    )
    assert (summary["kl_after_ppo"], summary["learned_reward_after_ppo"]) == (
        evals[-1]["eval/kl"],
        evals[-1]["eval/reward_mean"],
    )
