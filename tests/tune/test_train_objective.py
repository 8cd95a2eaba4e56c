"""Studies of GRPO runs: each trial trains in its own run directory (keyed by its number), a promoted
trial or a PBT segment continues its own checkpoint on one learning-rate schedule, and PBT writes the
study's outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reinforge.cli import app
from reinforge.train.grpo import GRPOConfig, train_grpo
from reinforge.tune.train_objective import TrainObjective, grpo_member

runner = CliRunner()
BASE = dict(
    task="addition",
    steps=4,
    prompts_per_step=4,
    group_size=4,
    max_new_tokens=4,
    eval_interval=0,
    train_examples=32,
    validation_examples=16,
    progress=False,
)


def train_lrs(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["lr"] for r in rows if r["kind"] == "train"]


def write_study(tmp_path: Path, model_dir, **extra) -> Path:
    cfg = {
        "study": "lr",
        "output_dir": str(tmp_path / "out"),
        "objective": {"type": "train", "base": {"model": str(model_dir), **BASE}},
        "objectives": {"val_reward": "maximize"},
        "space": {"learning_rate": [1e-5, 3e-3, 3e-2]},
        **extra,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_each_trial_of_a_train_study_has_its_own_run_and_result(tiny_addition_dir, tmp_path):
    path = write_study(
        tmp_path,
        tiny_addition_dir,
        sampler="grid",
        n_trials=3,
        scheduler={"type": "asha", "min_budget": 2, "max_budget": 4, "eta": 2},
    )
    r = runner.invoke(app, ["tune", str(path)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    trials = json.loads((out / "trials.json").read_text())["trials"]
    runs = sorted(p.name for p in (out / "runs" / "lr").iterdir())
    # before the fix every trial trained in trial-7b226c6561726e ('{"learni') and resumed trial 0's run
    assert runs == ["trial-0", "trial-1", "trial-2"]
    assert len({t["values"][0] for t in trials}) == 3, trials  # three learning rates, three results
    assert len({t["metrics"]["baseline_val_reward"] for t in trials}) == 1  # one base model, one baseline
    for t in trials:
        run_dir = out / "runs" / "lr" / f"trial-{t['number']}"
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert saved["learning_rate"] == t["params"]["learning_rate"]
        # a pruned trial stopped at its own budget (it reported another trial's step 4 before the fix)
        assert t["metrics"]["steps"] == t["metrics"]["budget"]
        assert len(train_lrs(run_dir)) == t["metrics"]["budget"]  # each step once, none from another run
    assert {t["metrics"]["budget"] for t in trials} == {2, 4}  # one promotion continued its own run
    # the study's storage gone, the runs left: a new study would resume them as its own trials
    (out / "study.db").unlink()
    again = runner.invoke(app, ["tune", str(path)])
    assert again.exit_code == 2 and "runs of an earlier study" in again.output, again.output


def rungs_of_asha(base: dict, root: Path) -> Path:
    objective = TrainObjective(base, root, max_budget=8)
    objective({}, 4, trial=0)  # rung 0
    objective({}, 8, trial=0)  # promoted: resumes trial-0 at step 4
    return root / "trial-0"


def segments_of_pbt(base: dict, root: Path) -> Path:
    train = grpo_member(GRPOConfig(**base), total_steps=8)
    train({"learning_rate": 1e-3}, root / "member-0", 4)
    train({"learning_rate": 1e-3}, root / "member-0", 8)  # resumes member-0 at step 4
    return root / "member-0"


@pytest.mark.parametrize("two_parts", [rungs_of_asha, segments_of_pbt])
def test_a_run_in_two_parts_follows_one_learning_rate_schedule(two_parts, tiny_addition_dir, tmp_path):
    base = {"model": str(tiny_addition_dir), **BASE, "learning_rate": 1e-3, "lr_schedule": "linear"}
    run_dir = two_parts(base, tmp_path / "runs")
    one_run = train_grpo(GRPOConfig(**{**base, "steps": 8, "output_dir": str(tmp_path / "one")}))
    assert one_run["steps"] == 8
    # before the fix each part's schedule ended at its own end: 7.5e-4 ... 0.0 at step 4, then 3.75e-4
    assert train_lrs(run_dir) == pytest.approx(train_lrs(tmp_path / "one"))


def test_pbt_study_writes_trials_and_best_config(tiny_addition_dir, tmp_path):
    pbt = {"population": 2, "interval": 2, "total_steps": 4, "quantile": 0.5, "baseline": False}
    path = write_study(tmp_path, tiny_addition_dir, pbt=pbt)
    r = runner.invoke(app, ["tune", str(path)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    summary = json.loads((out / "pbt_summary.json").read_text())
    assert 0 <= summary["baseline_val_reward"] <= 1  # the base model's, to compare the members with
    with (out / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    # one row per member and segment, as the study records them
    assert sorted((r["metrics.member"], r["metrics.step"]) for r in rows) == [
        ("0", "2"),
        ("0", "4"),
        ("1", "2"),
        ("1", "4"),
    ]
    assert (out / "trials.json").exists()
    # best.yaml: the best member's values at the end (what PBT ended with), as other studies write it
    assert yaml.safe_load((out / "best.yaml").read_text()) == summary["best_params"]
    # a second PBT in the same place would resume the members' finished runs: refused
    again = runner.invoke(app, ["tune", str(path)])
    assert again.exit_code == 2 and "earlier PBT run" in again.output, again.output


def test_resumed_study_trains_an_interrupted_trial_in_its_own_run(tiny_addition_dir, tmp_path):
    path = write_study(tmp_path, tiny_addition_dir, sampler="grid", n_trials=1)
    assert runner.invoke(app, ["tune", str(path)]).exit_code == 0
    # trial 1 asked and never told: what a study killed while training it leaves behind
    assert runner.invoke(app, ["tune", "ask", str(path)]).exit_code == 0
    r = runner.invoke(app, ["tune", str(path), "--set", "n_trials=2", "--resume"])
    assert r.exit_code == 0, r.output  # the earlier trials' runs are this study's: not refused
    out = tmp_path / "out"
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "complete"), (1, "complete")]
    saved = yaml.safe_load((out / "runs" / "lr" / "trial-1" / "config.yaml").read_text())
    assert (
        saved["learning_rate"] == trials[1]["params"]["learning_rate"] != trials[0]["params"]["learning_rate"]
    )
