"""Schedulers on cheap objectives: budgets in graded examples, promotions, multi-objective, paired stopping."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- the papers' promotion rules, checked on random objectives -------------------------------------
# A random objective: each (configuration, budget) gets its own uniform draw, so the ranking at one rung
# says nothing about the next and every promotion rule is exercised.


def logged_random_objective(seed: int) -> tuple:
    calls: list[tuple[float, int]] = []  # (x, budget) in evaluation order (one worker)

    def value(x: float, budget: int) -> float:
        return random.Random(hash((seed, x, budget))).random()

    def objective(params, budget):
        calls.append((params["x"], budget))
        return value(params["x"], budget)

    return objective, calls, value


def run_logged(scheduler, seed: int, n_trials: int) -> tuple[list, Callable]:
    objective, calls, value = logged_random_objective(seed)
    study = tune.run(
        objective,
        {"x": tune.Float(0, 1)},
        sampler="random",
        direction="minimize",
        scheduler=scheduler,
        n_trials=n_trials,
        seed=seed,
    )
    assert calls and all(t.state != "failed" for t in study.trials)
    return calls, value


def paper_halving(xs: list[float], budgets: list[int], eta: int, value) -> list[tuple[float, int]]:
    """Successive halving as Hyperband's inner loop (Li et al., 2018, Algorithm 1): evaluate the n_i
    configurations at r_i, keep the best floor(n_i / eta)."""
    out = []
    for i, b in enumerate(budgets):
        out += [(x, b) for x in xs]
        if i < len(budgets) - 1:
            xs = sorted(xs, key=lambda x: value(x, b))[: len(xs) // eta]
    return out


def new_configs(calls: list[tuple[float, int]]) -> list[float]:
    return list(dict.fromkeys(x for x, _ in calls))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10**6), eta=st.sampled_from([2, 3, 4]), rungs=st.integers(1, 3), r=st.integers(1, 2)
)
def test_successive_halving_promotes_as_the_paper(seed, eta, rungs, r):
    n = eta**rungs + seed % eta**rungs  # n >= eta^rungs: every rung keeps at least one configuration
    budgets = [r * eta**i for i in range(rungs + 1)]
    calls, value = run_logged(tune.SuccessiveHalving(r, budgets[-1], eta=eta, n_configs=n), seed, n)
    assert sorted(calls) == sorted(paper_halving(new_configs(calls), budgets, eta, value))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), eta=st.sampled_from([2, 3, 4]), s_max=st.integers(1, 3))
def test_hyperband_brackets_are_the_papers(seed, eta, s_max):
    R = eta**s_max  # max budget, min budget 1
    calls, value = run_logged(tune.Hyperband(1, R, eta=eta), seed, 1000)
    xs, expected = new_configs(calls), []
    for s in range(
        s_max, -1, -1
    ):  # Li et al. (2018), Algorithm 1: n = ceil((s_max+1)/(s+1) eta^s), r = R eta^-s
        n = math.ceil((s_max + 1) / (s + 1) * eta**s)
        expected += paper_halving(xs[:n], [R // eta**s * eta**i for i in range(s + 1)], eta, value)
        xs = xs[n:]
    assert not xs and sorted(calls) == sorted(expected)


def asha_promotable(rungs: list[dict], promoted: set, eta: int) -> tuple[int, float] | None:
    """Li et al. (2020), Algorithm 2: the highest rung k with a configuration in the top floor(n_k/eta)
    of ALL n_k configurations that reached it, not yet promoted; the best such one."""
    for k in range(len(rungs) - 2, -1, -1):
        top = sorted(rungs[k], key=rungs[k].get)[: len(rungs[k]) // eta]
        for x in top:
            if (x, k) not in promoted:
                return k, x
    return None


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), eta=st.sampled_from([2, 3, 4]), n_rungs=st.integers(2, 4))
def test_asha_promotes_as_the_paper(seed, eta, n_rungs):
    budgets = [eta**i for i in range(n_rungs)]
    n_trials = 3 * eta**2
    calls, value = run_logged(tune.ASHA(1, budgets[-1], eta=eta), seed, n_trials)
    rungs: list[dict] = [{} for _ in budgets]
    promoted: set = set()
    for x, b in calls:  # replay: each job is the one the algorithm hands out in that state
        k, due = budgets.index(b), asha_promotable(rungs, promoted, eta)
        if k == 0:
            assert due is None, f"a new trial started while {due} was promotable"
        else:
            assert due == (k - 1, x), f"promoted {x} to rung {k}; the rule says {due}"
            promoted.add((x, k - 1))
        rungs[k][x] = value(x, b)
    assert asha_promotable(rungs, promoted, eta) is None  # nothing promotable left undone
    assert len(rungs[0]) == n_trials


def test_asha_30_trials_run_a_third_past_the_first_rung_and_a_ninth_to_the_end():
    # Issue 24: with closed trials dropped from the ranking 24 of 30 went past rung 0 and 22 to the end.
    # Asynchronous slack: a trial promoted while in its rung's top third stays promoted when later trials
    # push it out (the mispromotions Li et al., 2020 discuss), so a few more than n/3 and n/9 go on: over these 20 seeds
    # 10-13 went past rung 0 (mean 11.2) and 3-6 to the full budget (mean 4.25); allowed: 15 and 7.
    past, full = [], []
    for seed in range(20):
        calls, _ = run_logged(tune.ASHA(1, 9, eta=3), seed, 30)
        past.append(len({x for x, b in calls if b > 1}))
        full.append(len({x for x, b in calls if b == 9}))
    assert min(past) >= 10 and max(past) <= 15 and sum(past) / 20 <= 12  # a third: 10
    assert min(full) >= 3 and max(full) <= 7 and sum(full) / 20 <= 5  # a ninth: 3.3
