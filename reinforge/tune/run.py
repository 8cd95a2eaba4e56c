"""``tune.run``: the ask -> evaluate -> tell loop over an executor, with budgets and schedulers.

>>> from reinforge.tune.space import Float
>>> study = run(lambda p: (p["x"] - 2) ** 2, {"x": Float(-5, 5)}, sampler="tpe", n_trials=30, seed=0)
>>> round(study.best.params["x"])
2
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reinforge.tune.executors import Executor, make_executor
from reinforge.tune.sampler_base import Sampler, SearchExhausted
from reinforge.tune.schedulers import WAIT, Job, Scheduler, make_scheduler
from reinforge.tune.space import Space, nest
from reinforge.tune.storage import Trial, abandoned
from reinforge.tune.study import Study, normalise_result


@dataclass
class Budget:
    """Caps on what a study may spend; the study stops starting trials once one is reached."""

    trials: int | None = None
    examples: int | None = None  # graded examples (cache hits are free)
    tokens: int | None = None  # model tokens (prompt + completion)
    seconds: float | None = None  # wall time
    cost_usd: float | None = None  # money at the configured prices

    def reached(self, spent: dict[str, float]) -> str | None:
        for key in ("trials", "examples", "tokens", "seconds", "cost_usd"):
            cap = getattr(self, key)
            if cap is not None and spent.get(key, 0) >= cap:
                return f"{key} budget {cap} reached"
        return None


SPEND_KEYS = {"examples": "examples_graded", "tokens": "tokens_spent", "cost_usd": "cost_usd"}


def timed(objective: Callable, params: dict, budget: int | None, number: int) -> tuple[Any, float]:
    """Evaluate and time one trial. An objective with ``wants_trial = True`` also gets ``trial=number``
    (a trainer keys its run directory by it, so a promoted or resumed trial finds its own checkpoint).
    Dotted parameter names reach the objective as nested dicts (:func:`~reinforge.tune.space.nest`)."""
    params = nest(params)
    kwargs = {"trial": number} if getattr(objective, "wants_trial", False) else {}
    t0 = time.perf_counter()
    out = objective(params, **kwargs) if budget is None else objective(params, budget, **kwargs)
    return out, time.perf_counter() - t0


def add_spend(spent: dict[str, float], metrics: dict) -> None:
    for key, metric in SPEND_KEYS.items():
        if isinstance(metrics.get(metric), int | float):
            spent[key] = spent.get(key, 0) + metrics[metric]


def optimize(
    study: Study,
    objective: Callable,
    n_trials: int | None = None,
    scheduler: Scheduler | dict | None = None,
    executor: Executor | str | dict | None = None,
    workers: int = 1,
    budget: Budget | None = None,
    callbacks: Sequence[Callable[[Study, Trial], None]] = (),
    progress: Any = None,
) -> Study:
    """Run trials until ``n_trials`` exist in the study (resumed ones count), a budget is spent, or the
    sampler/scheduler is done. Trials left running by a killed process are evaluated again first."""
    scheduler = make_scheduler(scheduler)
    ex = make_executor(executor, workers)
    own_executor = not isinstance(executor, Executor)  # shut down only what this call started
    budget = budget or Budget()
    t0 = time.time()
    existing = study.trials
    spent: dict[str, float] = {}
    for t in existing:
        add_spend(spent, t.attrs)
    stale = [t for t in existing if abandoned(t)]  # not another live process's running trials
    started = len(existing) - len(stale)
    if scheduler is not None:  # a halving schedule restarts; interrupted trials are closed, their cache kept
        for t in stale:
            study.tell(t.number, None, "failed", {"error": "interrupted"})
        stale = []
    pending: dict[Any, Any] = {}
    prev_budget: dict[int, int] = {}
    exhausted = False

    def may_start() -> bool:
        spent["seconds"], spent["trials"] = time.time() - t0, started
        return not exhausted and (n_trials is None or started < n_trials) and budget.reached(spent) is None

    def finished(trial: Trial) -> None:
        if progress is not None:
            progress(study, trial)
        for cb in callbacks:
            cb(study, trial)

    try:
        while True:
            while len(pending) < ex.workers:
                if scheduler is None:
                    if stale:
                        trial = stale.pop(0)
                    elif may_start():
                        try:
                            trial = study.ask()
                        except SearchExhausted:
                            exhausted = True
                            break
                    else:
                        break
                    started += 1
                    pending[ex.submit(timed, objective, trial.params, None, trial.number)] = trial
                else:
                    can = may_start()
                    try:
                        job = scheduler.next_job(study, can)
                    except SearchExhausted:
                        exhausted, job = True, (WAIT if scheduler.running else None)
                    if not isinstance(job, Job):  # None (nothing left to start) or WAIT
                        break
                    if job.rung == 0 and job.trial.number not in prev_budget:
                        started += 1
                    pending[ex.submit(timed, objective, job.trial.params, job.budget, job.trial.number)] = job
            if not pending:
                break
            for handle, ok, out in ex.wait(list(pending)):
                item = pending.pop(handle)
                if scheduler is None:
                    trial = item
                    if ok:
                        result, seconds = out
                        trial = study.tell(trial.number, result, attrs={"trial_seconds": seconds})
                    else:
                        trial = study.tell(trial.number, None, "failed", {"error": str(out)[-2000:]})
                    add_spend(spent, trial.attrs)
                    finished(trial)
                    continue
                job, number = item, item.trial.number
                values, metrics = None, {"error": str(out)[-2000:]}
                if ok:
                    result, seconds = out
                    values, metrics = normalise_result(result, study.objective_names)
                    metrics = {**metrics, "trial_seconds": seconds}
                    if "examples_graded" not in metrics:  # incremental objectives pay only for new examples
                        metrics["examples_graded"] = job.budget - prev_budget.get(number, 0)
                    add_spend(spent, metrics)
                prev_budget[number] = job.budget
                scheduler.on_result(study, job, values, metrics)
                if number in scheduler.closed:
                    finished(study.storage.trial(study.name, number))
        if scheduler is not None:
            scheduler.finish(study)
            if progress is not None and study.trials:
                progress(study, study.trials[-1])
    finally:
        if own_executor:
            ex.shutdown()
    study.spent = spent
    return study


def run(
    objective: Callable,
    space: Space | Mapping,
    sampler: str | dict | Sampler = "bayes",
    n_trials: int = 50,
    seed: int = 0,
    direction: str = "minimize",
    directions: Sequence[str] | Mapping[str, str] | None = None,
    metric: str | None = None,
    scheduler: Scheduler | dict | None = None,
    storage: str | Path | None = None,
    study_name: str = "study",
    executor: Executor | str | dict | None = None,
    workers: int = 1,
    constraints: Sequence[str] | Callable | None = None,
    budget: Budget | None = None,
    callbacks: Sequence[Callable] = (),
    resume: bool = True,
    progress: Any = None,
) -> Study:
    """Tune ``objective(params) -> float | list | dict`` (``objective(params, budget)`` under a scheduler).

    ``direction`` for one objective; ``directions`` (a list, or ``{"metric": "maximize", ...}`` when
    the objective returns a dict) for several. ``metric`` names the dict key of a single objective.
    ``constraints``: ``["tokens <= 500", ...]`` over returned metrics, or ``f(params|metrics) -> [c <= 0]``.
    ``storage``: a SQLite file; running again with the same file and ``study_name`` resumes."""
    study = Study(
        space,
        sampler,
        directions or [direction],
        storage,
        study_name,
        seed,
        constraints,
        n_trials,
        load_if_exists=resume,
        metric=metric,
    )
    return optimize(study, objective, n_trials, scheduler, executor, workers, budget, callbacks, progress)
