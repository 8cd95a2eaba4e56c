"""The demo's tuned SFT baselines on a tiny budget: ASHA's jobs, the best job kept and saved, its figures;
the tuning set they are chosen on, apart from the set they are reported on."""

from __future__ import annotations

import pytest
import torch

from reinforge.demo_baselines import SFTObjective, SFTTuning, tune_sft, tuning_rows
from reinforge.models.generation import HFBackend
from reinforge.tasks import get_task
from reinforge.tasks.addition import split_of
from reinforge.tasks.reverse import PROMPT, word_split
from reinforge.train.evaluate import evaluate
from reinforge.train.warmup import load_model


def test_tune_sft_keeps_the_best_job_and_scores_it_on_the_reported_set(tmp_path):
    task = get_task("reverse")
    rows = task.make_rows(16, seed=1)
    report = task.make_rows(8, seed=0, split="validation")
    tune = tuning_rows(task, report, 8, seed=0)
    tuning = SFTTuning(trials=2, min_steps=2, max_steps=4, lr_low=1e-3, lr_high=2e-2)
    best = tune_sft("1m", rows, tune, report, task, tuning, 0, tmp_path / "sft", max_tokens=7, progress=False)

    jobs = best["jobs"]
    # ASHA: two trials at 2 steps; the better one (the top 1/eta of the rung) goes on to 4 steps
    assert [j["sft_steps"] for j in jobs] == [2, 2, 4]
    promoted = next(j for j in jobs[:2] if j["trial"] == jobs[2]["trial"])
    assert promoted["tune_reward"] == max(j["tune_reward"] for j in jobs[:2])
    assert promoted["learning_rate"] == jobs[2]["learning_rate"]
    # each trial starts from its own initialisation, and a promoted trial from the one it had
    assert jobs[0]["init_seed"] != jobs[1]["init_seed"] and promoted["init_seed"] == jobs[2]["init_seed"]
    assert all(1e-3 <= j["learning_rate"] <= 2e-2 and 0 <= j["weight_decay"] <= 0.1 for j in jobs)
    assert best["tune_reward"] == max(j["tune_reward"] for j in jobs)
    assert {k: best[k] for k in jobs[0]} in jobs  # the best is one of the jobs, with its own settings
    assert best["steps_trained"] == 8 and best["tuning"]["trials"] == 2
    # the saved model is the best job's: it scores the same on the tuning set again, and the reported
    # figure is its score on the reported set, not the tuning set's
    model, tok = load_model(str(tmp_path / "sft"))
    backend = HFBackend(model, tok)
    assert evaluate(backend, tok, task.grader, tune, 7)["reward_mean"] == best["tune_reward"]
    assert evaluate(backend, tok, task.grader, report, 7)["reward_mean"] == best["val_reward"]


def test_trials_with_equal_settings_train_different_models(tmp_path):
    """Two trials of one study differ by their initialisation even where the sampler gives them the same
    settings: the study searches over initialisations too, not over one draw."""
    task = get_task("reverse")
    rows, val = task.make_rows(16, seed=1), task.make_rows(8, seed=0, split="validation")
    objective = SFTObjective("1m", rows, val, task, 0, tmp_path / "best", 7, progress=False)
    params = {"learning_rate": 3e-3, "weight_decay": 0.0}
    models = []
    for trial in (0, 1):
        objective.best = None  # keep each trial's model
        objective(params, 2, trial=trial)
        models.append(load_model(str(tmp_path / "best"))[0].state_dict())
    assert objective.jobs[0]["init_seed"] != objective.jobs[1]["init_seed"]
    assert any(not torch.equal(models[0][k], models[1][k]) for k in models[0])


def split_of_prompt(prompt: str) -> str:
    if prompt.startswith(PROMPT):  # reverse: "reverse: lemon"
        return word_split(prompt.removeprefix(PROMPT))
    return split_of(*map(int, prompt.split("+")))  # addition: "37+48"


@pytest.mark.parametrize("name", ["addition", "reverse"])
def test_tuning_rows_are_held_out_and_apart_from_the_reported_rows(name):
    task = get_task(name)
    report = task.make_rows(300, seed=1, split="validation")
    tune = tuning_rows(task, report, 300, seed=1)
    prompts = [r["messages"][-1]["content"] for r in tune]
    assert len(prompts) == len(set(prompts)) == 300
    assert not set(prompts) & {r["messages"][-1]["content"] for r in report}  # no reported prompt
    assert {split_of_prompt(p) for p in prompts} == {"validation"}  # none RFT or SFT trains on
    assert tuning_rows(task, report, 300, seed=1) == tune  # the same for the same seed
