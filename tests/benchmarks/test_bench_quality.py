"""The reward-vs-TRL benchmark runs end to end on a tiny budget (both sides, the shared evaluator, the plot),
and its clock and its time-to-reach figure do what they say."""

from __future__ import annotations

import json

import torch

from benchmarks import bench_quality


def test_quality_bench_smoke_runs_both_sides(tiny_addition_dir, tmp_path, capsys):
    res = bench_quality.main(
        ["--model", str(tiny_addition_dir), "--seconds", "0.5", "--eval-every", "0.25"]
        + ["--validation", "8", "--out", str(tmp_path)]
    )
    line = json.loads(next(x for x in capsys.readouterr().out.splitlines() if x.startswith('{"bench"')))
    assert list(line)[:4] == ["bench", "seconds", "reinforge_val_reward", "trl_val_reward"]
    assert line["bench"] == "quality" and "curves" not in line
    assert line["trl_seconds_to_trl_final"] is not None and line["trl_seconds_to_trl_best"] is not None
    for side in ("reinforge", "trl"):
        curve = res["curves"][side]
        assert res[f"{side}_steps"] >= 1 and curve[-1][1] == res[f"{side}_steps"]
        assert (
            curve[0][:2] == (0.0, 0) and curve[-1][0] >= 0.5
        )  # the step that crosses the budget is the last
        assert all(0.0 <= r <= 1.0 for _, _, r in curve)
    # both start from the same weights and are scored by one evaluator: the same first point
    assert res["curves"]["reinforge"][0] == res["curves"]["trl"][0]
    assert res["trl_activation_checkpointing"] is False
    assert (tmp_path / "quality.png").stat().st_size > 0
    assert json.loads((tmp_path / "result.json").read_text())["trl_val_reward"] == line["trl_val_reward"]


def test_clock_copies_weights_at_the_start_and_at_the_last_step():
    model = torch.nn.Linear(2, 2)
    clock = bench_quality.Clock(budget=0.0, every=1e9)
    clock.start(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert clock.tick(model)  # a zero budget is spent by the first step
    (t0, s0, w0), (t1, s1, w1) = clock.snapshots
    assert (t0, s0, s1) == (0.0, 0, 1) and t1 >= 0.0
    assert torch.equal(w1["weight"], w0["weight"] + 1.0)  # copies, not views of the live weights


def test_seconds_to_reach():
    curve = [(0.0, 0, 0.5), (3.0, 10, 0.55), (6.0, 20, 0.7), (9.0, 30, 0.65)]
    # table: (target, first time at or above it)
    cases = [(0.5, 0.0), (0.6, 6.0), (0.65, 6.0), (0.7, 6.0), (0.71, None)]
    for target, want in cases:
        assert bench_quality.seconds_to_reach(curve, target) == want, target
