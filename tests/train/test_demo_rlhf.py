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
    assert all(on_disk[k] is not None for k in KEYS) and on_disk["quick"] is True
    assert (tmp_path / "demo" / "beta_sweep.png").stat().st_size > 1000
    assert summary["beta_sweep"][0]["beta"] == "adaptive"
