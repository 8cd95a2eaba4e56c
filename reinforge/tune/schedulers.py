"""Schedulers spend a budget (graded examples for LLM apps, steps for training runs) where it pays.

Call order (``run`` does this): ``next_job(study, may_start)`` returns a :class:`Job` (evaluate this
trial at this budget), ``WAIT`` (results are pending) or ``None`` (done); after each job,
``on_result(study, job, values, metrics)``; at the end, ``finish(study)`` closes open trials.
Objectives under a scheduler take ``(params, budget)``: the first ``budget`` examples (or steps).
With the evaluation cache, promoting a trial from 30 to 90 examples grades only the 60 new ones.

Trials are ranked by value at a rung; with several objectives by Pareto front then crowding distance
(Optuna cannot prune multi-objective studies; these schedulers can). Infeasible trials rank last.

- ``SuccessiveHalving``: n configs at the smallest budget, keep the best 1/eta, multiply the budget by eta.
- ``Hyperband``: several halving brackets trading the number of configs against their starting budget.
- ``ASHA``: asynchronous halving; promotes whenever a trial is in its rung's top 1/eta, never waits.
- ``PairedStopping``: per-example early stopping; a one-sided Wilcoxon signed-rank test on the
  examples graded so far, against the best full trial on the same examples (as Optuna's WilcoxonPruner).

>>> rung_budgets(10, 90, 3)
[10, 30, 90]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from reinforge.errors import ConfigError
from reinforge.tune.pareto import rank_order, to_minimize
from reinforge.tune.storage import Trial

WAIT = "wait"


@dataclass
class Job:
    trial: Trial
    budget: int
    rung: int = 0


def rung_budgets(min_budget: int, max_budget: int, eta: float) -> list[int]:
    """min_budget * eta^k for k = 0, 1, ... with the last rung exactly max_budget."""
    if min_budget < 1 or max_budget < min_budget or eta <= 1:
        raise ConfigError(
            f"scheduler: need 1 <= min_budget ({min_budget}) <= max_budget ({max_budget}) and eta ({eta}) > 1"
        )
    out, b = [], float(min_budget)
    while round(b) < max_budget:
        out.append(int(round(b)))
        b *= eta
    return out + [max_budget]


class Scheduler(ABC):
    """Hands out (trial, budget) jobs. Two abstract methods; ``finish`` has a default."""

    def __init__(self):
        self.results: dict[int, dict[int, tuple[list[float], dict]]] = {}  # number -> budget -> result
        self.trials: dict[int, Trial] = {}
        self.running = 0
        self.closed: set[int] = set()

    @abstractmethod
    def next_job(self, study, may_start: bool) -> Job | str | None:
        """The next evaluation, ``WAIT`` for pending results, or ``None`` when the schedule is done."""

    @abstractmethod
    def decide(self, study, job: Job) -> None:
        """After ``job``'s result is recorded: promote, continue or close trials (``close``)."""

    def new_job(self, study, budget: int, rung: int = 0) -> Job:
        trial = study.ask()
        self.trials[trial.number] = trial
        self.running += 1
        return Job(trial, budget, rung)

    def again(self, number: int, budget: int, rung: int) -> Job:
        self.running += 1
        return Job(self.trials[number], budget, rung)

    def on_result(self, study, job: Job, values: list[float] | None, metrics: dict) -> None:
        self.running -= 1
        if values is None:  # failed: close it now
            self.close(study, job.trial.number, None, "failed", metrics)
            return
        self.results.setdefault(job.trial.number, {})[job.budget] = (values, metrics)
        study.report(job.trial.number, job.budget, values[0])
        self.decide(study, job)

    def close(self, study, number: int, result, state: str, metrics: dict | None = None) -> None:
        if number in self.closed:
            return
        self.closed.add(number)
        if result is None and number in self.results:
            top = max(self.results[number])
            values, m = self.results[number][top]
            metrics = {**m, "budget": top}
            result = dict(zip(study.objective_names, values))
        study.tell(number, result, state if result is not None else "failed", attrs=metrics)

    def close_at(self, study, number: int, budget: int, state: str) -> None:
        values, metrics = self.results[number][budget]
        self.close(
            study,
            number,
            {**metrics, **dict(zip(study.objective_names, values))},
            state,
            {**metrics, "budget": budget},
        )

    def finish(self, study) -> None:
        """Close every open trial as pruned at the highest budget it reached."""
        for number in list(self.trials):
            self.close(study, number, None, "pruned")

    def ranked(self, study, numbers: list[int], budget: int) -> list[int]:
        """``numbers`` best first by their value at ``budget`` (Pareto rank when several objectives)."""
        if not numbers:
            return []
        vals = to_minimize([self.results[n][budget][0] for n in numbers], study.directions)
        penalty = []
        for n in numbers:
            cons = study.constraints_of(self.trials[n].params, self.results[n][budget][1])
            penalty.append(0.0 if not cons else 1e12 * sum(max(c, 0.0) for c in cons))
        vals = vals + [[p] * vals.shape[1] for p in penalty]
        return [numbers[i] for i in rank_order(vals.tolist())]


class SuccessiveHalving(Scheduler):
    """Synchronous halving: ``n_configs`` trials at ``min_budget``; the top 1/eta go on at eta times the budget."""

    def __init__(self, min_budget: int, max_budget: int, eta: float = 3, n_configs: int | None = None):
        super().__init__()
        self.budgets = rung_budgets(min_budget, max_budget, eta)
        self.eta = eta
        self.n_configs = n_configs or int(round(eta ** (len(self.budgets) - 1)))
        self.rung = -1
        self.members: list[int] = []
        self.queue: list[int | None] = []  # None = a new trial

    def next_job(self, study, may_start: bool) -> Job | str | None:
        if self.queue:
            number = self.queue.pop(0)
            if number is not None:
                return self.again(number, self.budgets[self.rung], self.rung)
            if may_start:
                job = self.new_job(study, self.budgets[0], 0)
                self.members.append(job.trial.number)
                return job
            self.queue.clear()
        if self.running:
            return WAIT
        if self.rung == -1:
            self.rung, self.queue = 0, [None] * self.n_configs
            return self.next_job(study, may_start)
        if self.rung == len(self.budgets) - 1 or not self.members:
            return None
        done = [n for n in self.members if self.budgets[self.rung] in self.results.get(n, {})]
        ranked = self.ranked(study, done, self.budgets[self.rung])
        keep = ranked[: max(1, int(len(ranked) // self.eta))]
        for n in ranked[len(keep) :]:
            self.close_at(study, n, self.budgets[self.rung], "pruned")
        self.rung, self.members, self.queue = self.rung + 1, keep, list(keep)
        return self.next_job(study, may_start)

    def decide(self, study, job: Job) -> None:
        if job.budget == self.budgets[-1]:
            self.close_at(study, job.trial.number, job.budget, "complete")


class Hyperband(Scheduler):
    """Brackets of successive halving from the most aggressive (many configs, small budget) to plain
    evaluation at the full budget (Li et al., 2018)."""

    def __init__(self, min_budget: int, max_budget: int, eta: float = 3):
        super().__init__()
        s_max = len(rung_budgets(min_budget, max_budget, eta)) - 1
        self.brackets = []
        for s in range(s_max, -1, -1):
            n = int(math.ceil((s_max + 1) / (s + 1) * eta**s))
            r = max(min_budget, int(round(max_budget * eta ** (-s))))
            self.brackets.append(SuccessiveHalving(r, max_budget, eta, n_configs=n))
        self.index = 0

    def next_job(self, study, may_start: bool) -> Job | str | None:
        while self.index < len(self.brackets):
            job = self.brackets[self.index].next_job(study, may_start)
            if job is not None:
                return job
            self.index += 1
        return None

    def on_result(self, study, job: Job, values, metrics) -> None:
        for b in self.brackets:
            if job.trial.number in b.trials:
                b.on_result(study, job, values, metrics)

    def decide(self, study, job: Job) -> None:  # the brackets decide
        pass

    def finish(self, study) -> None:
        for b in self.brackets:
            b.finish(study)


class ASHA(Scheduler):
    """Asynchronous successive halving (Li et al., 2020, Algorithm 2): a trial at rung k is promotable
    when it is in the top floor(n_k / eta) of ALL n_k trials that reached rung k (promoted and finished
    ones included) and was not promoted yet; the highest promotable rung goes first, else a new trial
    starts at the smallest budget. Workers never wait for a rung to fill."""

    def __init__(self, min_budget: int, max_budget: int, eta: float = 3):
        super().__init__()
        self.budgets = rung_budgets(min_budget, max_budget, eta)
        self.eta = eta
        self.promoted: set[tuple[int, int]] = set()  # (trial, rung it left)

    def next_job(self, study, may_start: bool) -> Job | str | None:
        for k in range(len(self.budgets) - 2, -1, -1):
            b = self.budgets[k]
            reached = [n for n, r in self.results.items() if b in r]  # closed ones still count
            top = self.ranked(study, reached, b)[: int(len(reached) // self.eta)]
            for n in top:
                if (n, k) not in self.promoted and n not in self.closed:
                    self.promoted.add((n, k))
                    return self.again(n, self.budgets[k + 1], k + 1)
        if may_start:
            return self.new_job(study, self.budgets[0], 0)
        return WAIT if self.running else None

    def decide(self, study, job: Job) -> None:
        if job.budget == self.budgets[-1]:
            self.close_at(study, job.trial.number, job.budget, "complete")


class PairedStopping(Scheduler):
    """Grade a trial ``chunk`` examples at a time; stop it once a one-sided Wilcoxon signed-rank test
    on the examples graded so far says it is worse than the best full trial (p < ``alpha``).

    The objective must return a ``scores`` metric: one score per example, in example order."""

    def __init__(self, n_examples: int, chunk: int = 10, min_examples: int = 10, alpha: float = 0.1):
        super().__init__()
        self.budgets = list(range(chunk, n_examples, chunk)) + [n_examples]
        self.min_examples, self.alpha = min_examples, alpha
        self.incumbent: tuple[float, list[float]] | None = None  # (mean to minimise, per-example scores)
        self.continuing: list[tuple[int, int]] = []  # (trial, next rung)

    def next_job(self, study, may_start: bool) -> Job | str | None:
        if self.continuing:
            n, k = self.continuing.pop(0)
            return self.again(n, self.budgets[k], k)
        if may_start:
            return self.new_job(study, self.budgets[0], 0)
        return WAIT if self.running else None

    def decide(self, study, job: Job) -> None:
        from scipy.stats import wilcoxon

        values, metrics = self.results[job.trial.number][job.budget]
        scores = metrics.get("scores")
        if scores is None:
            raise ConfigError(
                "PairedStopping needs the objective to return a 'scores' metric (one per example)"
            )
        sign = 1.0 if study.directions[0] == "minimize" else -1.0
        if job.rung == len(self.budgets) - 1:
            self.close_at(study, job.trial.number, job.budget, "complete")
            if self.incumbent is None or sign * values[0] < self.incumbent[0]:
                self.incumbent = (sign * values[0], list(scores))
            return
        if self.incumbent is not None and len(scores) >= self.min_examples:
            diff = [sign * (s - b) for s, b in zip(scores, self.incumbent[1])]  # > 0: candidate worse
            if any(d != 0 for d in diff):
                p = wilcoxon(diff, alternative="greater", zero_method="zsplit", method="approx").pvalue
                if p < self.alpha:
                    self.close_at(study, job.trial.number, job.budget, "pruned")
                    return
        self.continuing.append((job.trial.number, job.rung + 1))


def make_scheduler(spec: dict | Scheduler | None) -> Scheduler | None:
    if spec is None or isinstance(spec, Scheduler):
        return spec
    spec = dict(spec)
    kinds = {
        "halving": SuccessiveHalving,
        "successive_halving": SuccessiveHalving,
        "hyperband": Hyperband,
        "asha": ASHA,
        "paired": PairedStopping,
    }
    kind = spec.pop("type", None)
    if kind not in kinds:
        raise ConfigError(f"scheduler.type {kind!r}: choose one of {sorted(kinds)}")
    try:
        return kinds[kind](**spec)
    except TypeError as e:
        raise ConfigError(f"scheduler ({kind}): {e}") from None
