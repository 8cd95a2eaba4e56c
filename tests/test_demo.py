"""`reinforge demo` in its quick form: every stage runs and the summary/plots are written."""

from __future__ import annotations

import json


def test_quick_demo_writes_summary_and_plots(tmp_path):
    from reinforge.demo import run_demo

    summary = run_demo(tmp_path / "demo", quick=True)
    on_disk = json.loads((tmp_path / "demo" / "summary.json").read_text())
    for key in ("baseline_val_reward", "final_val_reward", "larger_sft_val_reward", "gain", "seconds"):
        assert key in on_disk and on_disk[key] == summary[key]
    assert 0 <= summary["final_val_reward"] <= 1 and 0 <= summary["baseline_val_reward"] <= 1
    assert summary["gain"] == summary["final_val_reward"] - summary["baseline_val_reward"]
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 0
    assert (tmp_path / "demo" / "rft" / "final" / "config.json").exists()
    assert [h["sft_steps"] for h in summary["sft_history"]["small"]] == [30]
