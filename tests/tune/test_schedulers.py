"""Schedulers on cheap objectives: budgets in graded examples, promotions, multi-objective, paired stopping."""

from __future__ import annotations

import random

import pytest

from reinforge import tune
from reinforge.graders.base import CallableGrader
from reinforge.tune.objectives import ExampleObjective
from reinforge.tune.schedulers import rung_budgets

N_EXAMPLES = 81


def coin_pipeline(params: dict, rows: list[dict]) -> list[str]:
    """Example i is right when its fixed uniform draw is below the config's accuracy ``q``."""
    return ["1" if r["u"] < params["q"] else "0" for r in rows]


def coin_objective(calls: list | None = None) -> ExampleObjective:
    rng = random.Random(0)
    rows = [{"u": rng.random(), "answer": "1"} for _ in range(N_EXAMPLES)]

    def pipe(params, batch):
        if calls is not None:
            calls.extend((params["q"], r["u"]) for r in batch)
        return coin_pipeline(params, batch)

    return ExampleObjective(pipe, rows, CallableGrader(lambda i, s: float(s["output_text"] == i["answer"])))


SPACE = {"q": tune.Float(0.0, 1.0)}


def test_rung_budgets_table():
    assert rung_budgets(1, 27, 3) == [1, 3, 9, 27]  # exact powers
    assert rung_budgets(10, 100, 3) == [10, 30, 90, 100]  # last rung is the max budget
    assert rung_budgets(5, 5, 2) == [5]  # one rung: plain evaluation


def test_successive_halving_keeps_the_top_third():
    study = tune.run(
        coin_objective(),
        SPACE,
        sampler="random",
        direction="maximize",
        metric="score",
        scheduler=tune.SuccessiveHalving(9, 81, eta=3),
        n_trials=100,
        seed=0,
    )
    trials = study.trials
    assert len(trials) == 9
    complete = [t for t in trials if t.state == "complete"]
    assert len(complete) == 1 and complete[0].attrs["budget"] == 81
    assert complete[0].params["q"] == max(t.params["q"] for t in trials)  # monotone objective: best q wins
    assert sorted(len(t.intermediate) for t in trials) == [1] * 6 + [2, 2] + [3]


@pytest.mark.parametrize(
    "scheduler", [tune.Hyperband(3, 81, eta=3), tune.ASHA(3, 81, eta=3), tune.SuccessiveHalving(3, 81, eta=3)]
)
def test_schedulers_find_a_top_config_with_few_examples(scheduler):
    calls: list = []
    study = tune.run(
        coin_objective(calls),
        SPACE,
        sampler="random",
        direction="maximize",
        metric="score",
        scheduler=scheduler,
        n_trials=40,
        seed=0,
    )
    best = study.best
    assert best.attrs["budget"] == 81 and best.params["q"] > 0.8
    assert len(calls) == len(set(calls))  # promotions only grade new examples (the cache)
    grid_cost = len(study.trials) * N_EXAMPLES
    assert len(calls) < 0.5 * grid_cost


def test_asha_multi_objective_ranks_by_pareto_front():
    def obj(params, budget):
        return {"quality": params["q"] * (1 - 1 / (budget + 1)), "cost": params["c"] * budget}

    study = tune.run(
        obj,
        {"q": tune.Float(0, 1), "c": tune.Float(0.1, 1)},
        sampler="random",
        directions={"quality": "maximize", "cost": "minimize"},
        scheduler=tune.ASHA(1, 9, eta=3),
        n_trials=27,
        seed=0,
    )
    promoted = [t for t in study.trials if len(t.intermediate) > 1]
    assert promoted and len(promoted) < len(study.trials)
    assert all(t.state == "complete" for t in study.trials if t.attrs.get("budget") == 9)
    assert study.best_trials  # a Pareto front among full-budget trials


def test_paired_stopping_prunes_clearly_worse_trials_early():
    calls: list = []
    study = tune.run(
        coin_objective(calls),
        SPACE,
        sampler="random",
        direction="maximize",
        metric="score",
        scheduler=tune.PairedStopping(N_EXAMPLES, chunk=10, min_examples=10, alpha=0.05),
        n_trials=20,
        seed=0,
    )
    pruned = [t for t in study.trials if t.state == "pruned"]
    assert pruned, "no trial was stopped early"
    assert all(t.attrs["budget"] < N_EXAMPLES for t in pruned)
    best_q = max(t.params["q"] for t in study.trials)
    assert study.best.params["q"] > best_q - 0.15  # stopping never threw away the near-best
    assert len(calls) < 20 * N_EXAMPLES * 0.7


def test_budget_caps_stop_the_study():
    study = tune.run(
        coin_objective(),
        SPACE,
        sampler="random",
        direction="maximize",
        metric="score",
        n_trials=50,
        budget=tune.Budget(examples=N_EXAMPLES * 3),
    )
    assert len(study.trials) == 3
