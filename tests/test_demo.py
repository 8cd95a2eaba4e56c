"""`reinforge demo`: the quick form runs every stage and writes the summary and plots; the headline's maths
(error-rate reduction, the bar the issue sets, the spread over seeds); the command's user errors."""

from __future__ import annotations

import json

import pytest

from reinforge.demo import SPREAD_KEYS, error_rate_reduction, headline_holds, run_demo, spread_of


def test_quick_demo_writes_summary_and_plots(tmp_path):
    summary = run_demo(tmp_path / "demo", quick=True)
    on_disk = json.loads((tmp_path / "demo" / "summary.json").read_text())
    for key in (*SPREAD_KEYS, "gain_over_larger", "headline_holds", "tuning"):
        assert key in on_disk and on_disk[key] == summary[key]
    assert 0 <= summary["final_val_reward"] <= 1 and 0 <= summary["baseline_val_reward"] <= 1
    # the figures are the run's own: the kept SFT model is the one RFT starts from, and the final figure
    # is the RFT run's last validation
    run = tmp_path / "demo" / "rft"
    rft = json.loads((run / "summary.json").read_text())
    evals = [
        r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"
    ]
    # the baseline is the job best on the tuning set, scored on the reported set RFT is scored on
    assert summary["small_tune_reward"] == max(h["tune_reward"] for h in summary["sft_history"]["small"])
    assert rft["baseline_val_reward"] == pytest.approx(summary["baseline_val_reward"])
    assert summary["final_val_reward"] == rft["final_val_reward"] == evals[-1]["eval/reward_mean"]
    assert [r["step"] for r in evals] == [0, 2, 4]
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 0
    assert (tmp_path / "demo" / "rft" / "final" / "config.json").exists()
    # each baseline is its study's best job; ASHA ran 2 trials at 10 steps and promoted one to 20
    for who in ("small", "larger"):
        jobs = summary["sft_history"][who]
        assert [j["sft_steps"] for j in jobs] == [10, 10, 20]
        best = max(jobs, key=lambda j: j["tune_reward"])
        assert summary[f"{who}_sft_steps"] == best["sft_steps"]
        assert summary[f"{who}_learning_rate"] == best["learning_rate"]
        assert summary[f"{who}_steps_trained"] == 40
    assert summary["larger_tune_reward"] == max(j["tune_reward"] for j in summary["sft_history"]["larger"])
    assert summary["tuning"]["sft"]["selected_on"].startswith("32 validation-split rows, none of the 32")
    # the RFT run's own budget is stated beside the baselines': its recipe, not tuned per run
    assert summary["tuning"]["rft"]["trials"] == 0
    assert summary["tuning"]["rft"]["hyperparameters"]["steps"] == 4
    assert summary["tuning"]["sft"]["trials"] == 2 and summary["tuning"]["sft"]["scheduler"] == "asha"
    assert summary["error_rate_reduction"] == error_rate_reduction(
        summary["baseline_val_reward"], summary["final_val_reward"]
    )
    assert summary["headline_holds"] == headline_holds(summary)


@pytest.mark.parametrize(
    "baseline, final, reduction",
    [
        (0.8, 0.95, 0.75),  # error 0.2 -> 0.05: three quarters of it gone
        (0.5, 1.0, 1.0),  # every error gone
        (0.6, 0.6, 0.0),  # no change
        (0.8, 0.7, -0.5),  # worse: the error grew by half
        (0.0, 0.25, 0.25),  # from nothing right, the reduction is the gain
        (1.0, 1.0, None),  # a perfect baseline leaves no error to reduce
    ],
)
def test_error_rate_reduction(baseline, final, reduction):
    got = error_rate_reduction(baseline, final)
    assert got == reduction if reduction is None else got == pytest.approx(reduction)


@pytest.mark.parametrize(
    "baseline, final, larger, holds",
    [
        (0.5, 0.76, 0.7, True),  # gain 0.26 >= 0.25 (error-rate reduction only 52%)
        (0.9, 0.97, 0.8, True),  # gain 0.07 but 70% of the error gone
        (0.9, 0.95, 0.8, False),  # 50% of the error gone, gain 0.05: neither bar
        (0.5, 0.9, 0.9, False),  # a big gain, but the larger model is as good
        (1.0, 1.0, 0.5, False),  # no error to reduce and no gain
    ],
)
def test_headline_holds(baseline, final, larger, holds):
    s = {"baseline_val_reward": baseline, "final_val_reward": final, "larger_sft_val_reward": larger}
    s |= {"gain": final - baseline, "error_rate_reduction": error_rate_reduction(baseline, final)}
    assert headline_holds(s) is holds


def test_spread_is_min_and_max_over_runs():
    runs = [
        {**dict.fromkeys(SPREAD_KEYS, 0.1), "gain": 0.3, "headline_holds": True},
        {**dict.fromkeys(SPREAD_KEYS, 0.2), "gain": 0.25, "headline_holds": True},
        {**dict.fromkeys(SPREAD_KEYS, 0.3), "error_rate_reduction": None, "headline_holds": False},
    ]
    spread = spread_of(runs)
    assert spread["gain"] == [0.25, 0.3] and spread["seconds"] == [0.1, 0.3]
    assert spread["error_rate_reduction"] == [0.1, 0.2]  # an undefined reduction is left out, not a zero
    assert spread["headline_holds_in_all"] is False
    assert spread_of(runs[:2])["headline_holds_in_all"] is True


def test_unknown_task_is_a_one_line_user_error(tmp_path):
    from typer.testing import CliRunner

    from reinforge.cli import app

    out = tmp_path / "demo"
    res = CliRunner().invoke(
        app, ["demo", "--task", "nope", "--output-dir", str(out), "--seed", "0", "--seed", "1"]
    )
    text = res.stderr.strip()
    assert res.exit_code == 2 and "\n" not in text and "Traceback" not in res.output, res.output
    assert "--task 'nope'" in text and "addition" in text and "reverse" in text, text
    assert not out.exists()  # refused before any work
