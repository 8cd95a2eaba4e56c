"""`reinforge demo` in its quick form: every stage runs and the summary/plots are written."""

from __future__ import annotations

import json

import pytest


def test_quick_demo_writes_summary_and_plots(tmp_path):
    from reinforge.demo import run_demo

    summary = run_demo(tmp_path / "demo", quick=True)
    on_disk = json.loads((tmp_path / "demo" / "summary.json").read_text())
    for key in ("baseline_val_reward", "final_val_reward", "larger_sft_val_reward", "gain", "seconds"):
        assert key in on_disk and on_disk[key] == summary[key]
    assert 0 <= summary["final_val_reward"] <= 1 and 0 <= summary["baseline_val_reward"] <= 1
    # the figures are the run's own: the kept SFT model is the one RFT starts from, and the final figure
    # is the RFT run's last validation
    run = tmp_path / "demo" / "rft"
    rft = json.loads((run / "summary.json").read_text())
    evals = [
        r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"
    ]
    assert summary["baseline_val_reward"] == max(h["val_reward"] for h in summary["sft_history"]["small"])
    assert rft["baseline_val_reward"] == pytest.approx(summary["baseline_val_reward"])
    assert summary["final_val_reward"] == rft["final_val_reward"] == evals[-1]["eval/reward_mean"]
    assert [r["step"] for r in evals] == [0, 2, 4]
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 0
    assert (tmp_path / "demo" / "rft" / "final" / "config.json").exists()
    assert [h["sft_steps"] for h in summary["sft_history"]["small"]] == [30]
