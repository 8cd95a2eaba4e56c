"""The demo's tuned SFT baselines on a tiny budget: ASHA's jobs, the best job kept and saved, its figures."""

from __future__ import annotations

from reinforge.demo_baselines import SFTTuning, tune_sft
from reinforge.models.generation import HFBackend
from reinforge.tasks import get_task
from reinforge.train.evaluate import evaluate
from reinforge.train.warmup import load_model


def test_tune_sft_keeps_the_best_job_and_its_model(tmp_path):
    task = get_task("reverse")
    rows = task.make_rows(16, seed=1)
    val = task.make_rows(8, seed=0, split="validation")
    tuning = SFTTuning(trials=2, min_steps=2, max_steps=4, lr_low=1e-3, lr_high=2e-2)
    best = tune_sft("1m", rows, val, task, tuning, seed=0, out=tmp_path / "sft", max_tokens=7, progress=False)

    jobs = best["jobs"]
    # ASHA: two trials at 2 steps; the better one (the top 1/eta of the rung) goes on to 4 steps
    assert [j["sft_steps"] for j in jobs] == [2, 2, 4]
    promoted = next(j for j in jobs[:2] if j["trial"] == jobs[2]["trial"])
    assert promoted["val_reward"] == max(j["val_reward"] for j in jobs[:2])
    assert promoted["learning_rate"] == jobs[2]["learning_rate"]
    assert all(1e-3 <= j["learning_rate"] <= 2e-2 and 0 <= j["weight_decay"] <= 0.1 for j in jobs)
    assert best["val_reward"] == max(j["val_reward"] for j in jobs)
    assert {k: best[k] for k in jobs[0]} in jobs  # the best is one of the jobs, with its own settings
    assert best["steps_trained"] == 8 and best["tuning"]["trials"] == 2
    # the saved model is the best job's: it scores the same again
    model, tok = load_model(str(tmp_path / "sft"))
    again = evaluate(HFBackend(model, tok), tok, task.grader, val, 7)["reward_mean"]
    assert again == best["val_reward"]
