"""Samplers propose configurations behind one ask/tell protocol (:mod:`reinforge.tune.sampler_base`).

Each rebuilds whatever it needs from the history the study passes in, so a killed study resumes and
the manual ``tune ask`` / ``tune tell`` mode works across processes.

Implementations: ``grid``, ``random``, ``quasirandom`` (scrambled Sobol), ``tpe``, ``gp``, ``cmaes``,
``nsga2`` (Optuna's, through its ask-and-tell API), ``bayes`` (GP for small single-objective spaces
without conditions, else TPE) and ``evolution`` (ours, in ``evolution.py``).

>>> from reinforge.tune.space import Space, Int
>>> ctx = AskContext(Space({"x": Int(0, 9)}), [], 0, ["minimize"])
>>> RandomSampler(seed=0).ask(ctx) == RandomSampler(seed=0).ask(ctx)
True
"""

from __future__ import annotations

import random
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from reinforge.errors import ConfigError
from reinforge.tune.evolution import EvolutionSampler
from reinforge.tune.optuna_compat import accepts, constraint_attrs, constraint_kwargs, set_constraints
from reinforge.tune.sampler_base import AskContext, Sampler, SearchExhausted, config_key
from reinforge.tune.space import Space, Subset
from reinforge.tune.storage import Trial


class RandomSampler(Sampler):
    """Uniform in each parameter's own scale; trial ``n`` always gets the same draw for a given seed."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        return ctx.space.sample(random.Random(f"{self.seed}-{ctx.number}"))

    def spec(self) -> dict:
        return {"name": self.name, "seed": self.seed}


class QuasiRandomSampler(RandomSampler):
    """Scrambled Sobol points: random-like but evenly spread; point ``n`` goes to trial ``n``."""

    name = "quasirandom"

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        from scipy.stats import qmc  # scipy.stats takes ~1.7 s to import: only this sampler needs it

        names = list(ctx.space)
        sobol = qmc.Sobol(d=len(names), scramble=True, seed=self.seed)
        if ctx.number:
            sobol.fast_forward(ctx.number)
        u = sobol.random(1)[0]
        return ctx.space.from_units(dict(zip(names, u.tolist())))


class GridSampler(Sampler):
    """Every combination, in order; ``points`` values per continuous parameter."""

    name = "grid"

    def __init__(self, points: int = 5, seed: int = 0):
        self.points, self.seed = points, seed

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        tried = {config_key(t.params) for t in ctx.trials}
        for config in ctx.space.grid(self.points):
            if config_key(config) not in tried:
                return config
        raise SearchExhausted(f"grid of {len(ctx.space.grid(self.points))} configurations is done")

    def spec(self) -> dict:
        return {"name": self.name, "points": self.points, "seed": self.seed}


class OptunaSampler(Sampler):
    """Optuna's TPE / GP / CMA-ES / NSGA-II through ask-and-tell, synced from the study's history."""

    ALGORITHMS = ("tpe", "gp", "cmaes", "nsga2")

    def __init__(self, algorithm: str = "tpe", seed: int = 0, **options: Any):
        if algorithm not in self.ALGORITHMS:
            raise ConfigError(f"sampler {algorithm!r}: Optuna samplers here are {self.ALGORITHMS}")
        self.name, self.algorithm, self.seed, self.options = algorithm, algorithm, seed, options
        self.ostudy: optuna.Study | None = None
        self.live: dict[int, Any] = {}  # our trial number -> Optuna trial asked in this process
        self.known: set[int] = set()  # trial numbers Optuna has heard the end of

    def _build(self, ctx: AskContext) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # A study resumed with trials already on record gets a seed moved past them: Optuna's
        # start-up draws come from the sampler's own generator, which adding old trials does not
        # advance, so the same seed would propose the first trials' parameters again.
        kw: dict[str, Any] = {"seed": self.seed + len(ctx.trials), **self.options}
        make = {
            "tpe": optuna.samplers.TPESampler,
            "gp": optuna.samplers.GPSampler,
            "cmaes": optuna.samplers.CmaEsSampler,
            "nsga2": optuna.samplers.NSGAIISampler,
        }[self.algorithm]
        if self.algorithm in ("gp", "cmaes") and accepts(make, "warn_independent_sampling"):  # GP: not 4.2
            kw.setdefault("warn_independent_sampling", False)
        kw.update(constraint_kwargs(make, ctx.has_constraints))  # Optuna 4 only
        # directions are minimize|maximize (Study checks them); Optuna's stubs want the Literal
        self.ostudy = optuna.create_study(sampler=make(**kw), directions=ctx.directions)  # type: ignore[arg-type]
        return self.ostudy

    def _sync(self, ctx: AskContext, ostudy: optuna.Study) -> None:
        """Give Optuna the finished trials it has not seen (from storage, other workers, a resume)."""
        for t in ctx.trials:
            if t.number in self.known or t.number in self.live or t.state == "running" or t.values is None:
                continue
            params, dists = optuna_params(ctx.space, t.params)
            state = TrialState.COMPLETE if t.state == "complete" else TrialState.PRUNED
            inter = {int(k): v for k, v in t.intermediate.items()} if len(ctx.directions) == 1 else {}
            ostudy.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    values=t.values if state == TrialState.COMPLETE else None,
                    state=state,
                    system_attrs=constraint_attrs(t.constraints),
                    intermediate_values=inter,
                )
            )
            self.known.add(t.number)

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        ostudy = self.ostudy if self.ostudy is not None else self._build(ctx)
        self._sync(ctx, ostudy)
        otrial = ostudy.ask()
        params: dict[str, Any] = {}
        for name, p in ctx.space.items():
            if not ctx.space.is_active(name, params):
                continue
            d = p.distribution()
            if isinstance(p, Subset):  # one boolean per option
                params[name] = p.decode(
                    otrial.suggest_categorical(b, [False, True]) for b in p.bit_names(name)
                )
            elif isinstance(d, FloatDistribution):
                params[name] = otrial.suggest_float(name, d.low, d.high, log=d.log)
            elif isinstance(d, IntDistribution):
                params[name] = otrial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
            elif isinstance(d, CategoricalDistribution):
                params[name] = otrial.suggest_categorical(name, list(d.choices))
        self.live[ctx.number] = otrial
        return params

    def tell(self, trial: Trial) -> None:
        otrial = self.live.pop(trial.number, None)
        if otrial is None or self.ostudy is None:
            return
        set_constraints(otrial, trial.constraints)
        if trial.state == "complete" and trial.values is not None:
            self.ostudy.tell(otrial, trial.values if len(trial.values) > 1 else trial.values[0])
        else:
            if len(self.ostudy.directions) == 1:
                for budget, v in sorted(trial.intermediate.items()):
                    otrial.report(v, int(budget))
            state = TrialState.PRUNED if trial.state == "pruned" else TrialState.FAIL
            self.ostudy.tell(otrial, state=state)
        self.known.add(trial.number)

    def spec(self) -> dict:
        return {"name": self.algorithm, "seed": self.seed, **self.options}


def optuna_params(space: Space, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored trial's parameters as Optuna sees them, with their distributions: a Subset as one
    boolean per option; values outside the space (an edited space on resume) are left out."""
    out: dict[str, Any] = {}
    dists: dict[str, Any] = {}
    for n, v in params.items():
        p = space.params.get(n)
        if isinstance(p, Subset):
            if p.contains(v):
                out.update(bits := p.encode(n, v))
                dists.update(dict.fromkeys(bits, p.distribution()))
        elif p is not None and v in getattr(d := p.distribution(), "choices", [v]):
            out[n], dists[n] = v, d
    return out, dists


def resolve_bayes(space: Space, n_objectives: int, n_trials: int | None) -> str:
    """GP for single-objective studies of <= 100 trials without conditions, else TPE.

    GP models the whole space jointly and wins at small budgets (Branin, 50 trials, Optuna 5.0:
    GP 0.398 vs TPE 0.465 median); TPE scales to many trials, conditions and several objectives."""
    small = n_trials is None or n_trials <= 100
    return "gp" if n_objectives == 1 and small and not space.conditional else "tpe"


def make_sampler(
    spec: str | dict | Sampler,
    space: Space,
    n_objectives: int = 1,
    n_trials: int | None = None,
    seed: int = 0,
) -> Sampler:
    """A sampler from a name (``"bayes"``), a spec dict (``{"name": "evolution", "population": 16}``) or itself."""
    if isinstance(spec, Sampler):
        return spec
    opts = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = opts.pop("name", "bayes")
    opts.setdefault("seed", seed)
    if name == "bayes":
        name = resolve_bayes(space, n_objectives, n_trials)
    if name in OptunaSampler.ALGORITHMS:
        return OptunaSampler(name, **opts)
    simple = {"random": RandomSampler, "quasirandom": QuasiRandomSampler, "grid": GridSampler}
    if name in simple:
        try:
            return simple[name](**opts)
        except TypeError as e:
            raise ConfigError(f"sampler {name}: {e}") from None
    if name == "evolution":
        return EvolutionSampler(**opts)
    raise ConfigError(
        f"sampler {name!r}: unknown; choose one of bayes, tpe, gp, cmaes, nsga2, random, "
        "quasirandom, grid, evolution"
    )
