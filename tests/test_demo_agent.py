"""`reinforge demo agent`: the calculator endpoint's rules, and the quick form running every stage (SFT with
and without the tool, RFT in episodes against the HTTP calculator) to the summary and plot."""

from __future__ import annotations

import json

import httpx
import pytest

from reinforge.demo_agent import ToolServer, calculator_app, run_demo_agent

SUMMARY_KEYS = (
    "no_tool_val_reward",
    "sft_val_reward",
    "final_val_reward",
    "valid_call_rate",
    "mean_tool_calls",
    "discarded_rollouts",
    "seconds",
)


@pytest.mark.parametrize(
    "body, status, text",
    [
        ({"expression": "48213*5921"}, 200, "285469173"),  # the answer, as text
        ({"expression": "12+34"}, 200, "46"),
        ({"expression": "2**9"}, 400, "calculator: expression '2**9': write two whole numbers"),  # not + or *
        ({"expr": "1+2"}, 400, "calculator: calculator() got an unexpected keyword argument"),  # wrong name
    ],
)
def test_the_calculator_endpoint_answers_text_and_a_bad_call_is_a_400_for_the_model(body, status, text):
    with ToolServer(calculator_app()) as url:
        r = httpx.post(f"{url}/calculator", json=body, headers={"X-Rollout-Id": "r-1"})
    assert r.status_code == status and r.text.startswith(text), r.text


def test_quick_demo_runs_every_stage_to_the_summary_and_plot(tmp_path):
    summary = run_demo_agent(tmp_path / "demo", quick=True)
    on_disk = json.loads((tmp_path / "demo" / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in on_disk and on_disk[key] == summary[key], key
    for key in ("no_tool_val_reward", "sft_val_reward", "final_val_reward"):
        assert 0 <= summary[key] <= 1, key
    assert summary["valid_call_rate"] is None or 0 <= summary["valid_call_rate"] <= 1  # None: no call made
    # the final figure is the RFT run's last validation, of episodes against the HTTP tool
    run = tmp_path / "demo" / "rft"
    evals = [
        r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"
    ]
    assert summary["final_val_reward"] == evals[-1]["eval/reward_mean"]
    assert "eval/agent/tool_calls_mean" in evals[-1]
    assert (tmp_path / "demo" / "agent_demo.png").stat().st_size > 0
    assert (run / "final" / "config.json").exists()
