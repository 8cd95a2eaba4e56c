"""A study: a search space, a sampler, one or more objectives, and the trials so far (in storage).

``ask`` proposes a trial, ``tell`` records how it ended, ``report`` records a value at a budget
(for schedulers). ``best`` is the best feasible trial; ``best_trials`` the Pareto front.

>>> from reinforge.tune.space import Float
>>> study = Study({"x": Float(-2, 2)}, sampler="random", directions=["minimize"])
>>> for _ in range(20):
...     t = study.ask()
...     _ = study.tell(t.number, (t.params["x"] - 1) ** 2)
>>> abs(study.best.params["x"] - 1) < 0.5
True
"""

from __future__ import annotations

import csv
import json
import math
import operator
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from reinforge.errors import ConfigError, ReinforgeError
from reinforge.tune.pareto import non_dominated_sort, to_minimize
from reinforge.tune.sampler_base import AskContext, Sampler
from reinforge.tune.samplers import make_sampler
from reinforge.tune.space import Space
from reinforge.tune.storage import Storage, Trial
from reinforge.tune.storage_rdb import OptunaStorage, is_url, open_storage

OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
FINAL_STATES = ("complete", "pruned", "failed")  # how a trial may end (it starts "running")


def parse_constraint(text: str) -> Callable[[dict], float]:
    """``"tokens <= 500"`` -> a function of the metrics that is <= 0 when satisfied."""
    m = re.fullmatch(r"\s*([\w./-]+)\s*(<=|>=|<|>)\s*([-+.\deE]+)\s*", text)
    if not m:
        raise ConfigError(f"constraint {text!r}: write it as 'metric <= number' (or >=, <, >)")
    name, op, bound = m.group(1), m.group(2), float(m.group(3))

    def violation(metrics: dict) -> float:
        if name not in metrics:
            raise ReinforgeError(f"constraint {text!r}: the objective returned no metric {name!r}")
        v = float(metrics[name])
        return v - bound if op in ("<=", "<") else bound - v

    return violation


def normalise_result(out: Any, objective_names: list[str]) -> tuple[list[float], dict]:
    """An objective's return value -> (values, metrics). Floats, lists, or dicts of metrics."""
    if isinstance(out, Mapping):
        metrics = dict(out)
        missing = [n for n in objective_names if n not in metrics]
        if missing:
            raise ReinforgeError(
                f"objective returned {sorted(metrics)} but the study optimises {missing}; "
                "name the objectives with directions={'name': 'maximize', ...} or metric="
            )
        return [float(metrics[n]) for n in objective_names], metrics
    if isinstance(out, int | float):
        return [float(out)], {}
    if isinstance(out, Sequence) and not isinstance(out, str):
        return [float(x) for x in out], {}
    raise ReinforgeError(
        f"objective returned {type(out).__name__}; return a float, a list, or a dict of metrics"
    )


class Study:
    def __init__(
        self,
        space: Space | Mapping,
        sampler: str | dict | Sampler = "bayes",
        directions: Sequence[str] | Mapping[str, str] = ("minimize",),
        storage: str | Path | Storage | OptunaStorage | None = None,  # a file, a database URL, None: memory
        name: str = "study",
        seed: int = 0,
        constraints: Sequence[str] | Callable | None = None,
        n_trials: int | None = None,
        load_if_exists: bool = True,
        metric: str | None = None,
    ):
        self.storage = storage if isinstance(storage, Storage | OptunaStorage) else open_storage(storage)
        self.name = name
        meta = self.storage.study_meta(name)
        if meta is not None and not load_if_exists:
            where = getattr(self.storage, "url", None) or self.storage.path or "memory"
            raise ReinforgeError(f"study {name!r} already exists in {where}; pass --resume to continue it")
        if isinstance(directions, Mapping):
            names, dirs = list(directions), list(directions.values())
        else:
            dirs = list(directions)
            names = (
                [metric]
                if metric and len(dirs) == 1
                else [f"value{i}" if len(dirs) > 1 else "value" for i in range(len(dirs))]
            )
        for d in dirs:
            if d not in ("minimize", "maximize"):
                raise ConfigError(f"direction {d!r}: use minimize or maximize")
        self.space = space if isinstance(space, Space) else Space(space)
        self.directions, self.objective_names = dirs, names
        self.constraint_texts = list(constraints) if isinstance(constraints, list | tuple) else []
        self.constraint_fn = constraints if callable(constraints) else None
        self._constraint_fns = [parse_constraint(c) for c in self.constraint_texts]
        self.sampler = make_sampler(sampler, self.space, len(dirs), n_trials, seed)
        if meta is None:
            self.storage.create_study(name, self.meta())
        self.lock = threading.RLock()
        self.spent: dict[str, float] = {}  # what ``run`` spent: examples, tokens, cost, seconds, trials

    def meta(self) -> dict:
        return {
            "space": self.space.to_dict(),
            "directions": self.directions,
            "objective_names": self.objective_names,
            "sampler": self.sampler.spec(),
            "constraints": self.constraint_texts,
        }

    @classmethod
    def load(cls, storage: str | Path, name: str | None = None) -> Study:
        """Open a stored study with its own space, sampler and directions (for ask/tell and export)."""
        if not is_url(storage) and not Path(storage).is_file():
            raise ReinforgeError(f"{storage}: no study file there (a study's .db file or its config .yaml)")
        try:
            st = open_storage(storage)
            names = st.study_names()
        except sqlite3.DatabaseError as e:
            raise ReinforgeError(
                f"{storage}: not a study file ({e}); give a study's .db file or its config .yaml"
            ) from None
        if name is None:
            if len(names) != 1:
                raise ReinforgeError(f"{storage}: holds studies {names}; name one")
            name = names[0]
        meta = st.study_meta(name)
        if meta is None:
            raise ReinforgeError(f"{storage}: no study named {name!r} (found {names})")
        return cls(
            Space.from_dict(meta["space"]),
            meta["sampler"],
            dict(zip(meta["objective_names"], meta["directions"])),
            st,
            name,
            constraints=meta.get("constraints") or None,
        )

    # -- ask / tell
    @property
    def trials(self) -> list[Trial]:
        return self.storage.trials(self.name)

    def ask(self, params: dict | None = None) -> Trial:
        """Start a trial: the sampler's proposal, or ``params`` given by hand."""
        with self.lock:
            # the number first: unique even when other processes share the storage, and the sampler's
            # draw for trial n then differs from theirs
            number = self.storage.new_trial(self.name)
            try:
                if params is None:
                    ctx = AskContext(
                        self.space,
                        [t for t in self.trials if t.number != number],
                        number,
                        self.directions,
                        bool(self.constraint_texts or self.constraint_fn),
                    )
                    params = self.sampler.ask(ctx)
                else:
                    params = self.space.validate(params)
            except BaseException:  # SearchExhausted, a bad params dict: no trial started
                self.storage.drop_trial(self.name, number)
                raise
            self.storage.set_params(self.name, number, params)
            return Trial(number, params)

    def report(self, number: int, budget: int, value: float) -> None:
        self.storage.report(self.name, number, budget, value)

    def constraints_of(self, params: dict, metrics: dict) -> list[float] | None:
        if self.constraint_fn is not None:
            return [float(c) for c in self.constraint_fn({**params, **metrics})]
        if self._constraint_fns:
            return [f(metrics) for f in self._constraint_fns]
        return None

    def tell(
        self, number: int, result: Any = None, state: str = "complete", attrs: dict | None = None
    ) -> Trial:
        """End a running trial with the objective's return value (``state`` complete, pruned or failed).

        A trial is told once: telling an unknown or already finished trial, or a number of values other
        than the study's objectives, raises ``ReinforgeError`` and records nothing."""
        if state not in FINAL_STATES:
            raise ReinforgeError(f"trial {number}: state {state!r}; use one of {', '.join(FINAL_STATES)}")
        with self.lock:
            trial = next((t for t in self.trials if t.number == number), None)
            if trial is None:
                raise ReinforgeError(f"study {self.name!r} has no trial {number}; ask for it first")
            if trial.state != "running":
                raise ReinforgeError(f"trial {number} is already {trial.state}; a trial is told once")
            values, metrics, constraints = None, dict(attrs or {}), None
            if result is not None:
                values, m = normalise_result(result, self.objective_names)
                if len(values) != len(self.directions):
                    raise ReinforgeError(
                        f"trial {number}: got {len(values)} values but the study has "
                        f"{len(self.directions)} objectives ({', '.join(self.objective_names)}); "
                        "give one value per objective"
                    )
                metrics.update(m)
                if any(math.isnan(v) for v in values):
                    values, state = None, "failed"
            if values is not None:
                constraints = self.constraints_of(trial.params, metrics)
            self.storage.finish_trial(
                self.name,
                number,
                state if values is not None or state != "complete" else "failed",
                values,
                metrics,
                constraints,
            )
            trial = self.storage.trial(self.name, number)
            self.sampler.tell(trial)
            return trial

    # -- results
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.state == "complete" and t.values is not None]

    @property
    def best(self) -> Trial:
        """The best feasible complete trial (first objective; on the Pareto front when several)."""
        finished = self.finished()
        if not finished:
            raise ReinforgeError(f"study {self.name!r}: no finished trial yet")
        done = [t for t in finished if t.feasible]
        if not done:  # nothing satisfies the constraints yet: the least violating trial
            return min(finished, key=lambda t: sum(max(c, 0.0) for c in t.constraints or []))
        if len(self.directions) > 1:
            done = self.best_trials
        sign = 1 if self.directions[0] == "minimize" else -1
        return min(done, key=lambda t: sign * t.scored[0])

    @property
    def best_trials(self) -> list[Trial]:
        """The Pareto front of feasible complete trials."""
        done = [t for t in self.finished() if t.feasible]
        if not done:
            return []
        fronts = non_dominated_sort(to_minimize([t.scored for t in done], self.directions).tolist())
        return [t for t, f in zip(done, fronts) if f == 0]

    def rows(self) -> list[dict]:
        out = []
        for t in self.trials:
            row = {"number": t.number, "state": t.state}
            values = t.values if t.values is not None else [None] * len(self.objective_names)
            for n, v in zip(self.objective_names, values):
                row[n] = v
            row.update({f"params.{k}": v for k, v in t.params.items()})
            row.update(
                {f"metrics.{k}": v for k, v in t.attrs.items() if isinstance(v, int | float | str | bool)}
            )
            row["feasible"] = t.feasible
            row["duration_s"] = t.duration
            out.append(row)
        return out

    def export(self, path: str | Path) -> Path:
        """Write every trial as ``.csv`` or ``.json`` (by the file's suffix)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.rows()
        if path.suffix == ".json":
            full = [
                {
                    "number": t.number,
                    "state": t.state,
                    "params": t.params,
                    "values": t.values,
                    "intermediate": t.intermediate,
                    "metrics": t.attrs,
                    "constraints": t.constraints,
                }
                for t in self.trials
            ]
            path.write_text(
                json.dumps({"study": self.name, **self.meta(), "trials": full}, indent=1, default=str)
            )
        elif path.suffix == ".csv":
            cols = list(dict.fromkeys(k for r in rows for k in r))
            with path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols)
                w.writeheader()
                w.writerows(rows)
        else:
            raise ReinforgeError(f"{path}: export to .csv or .json")
        return path

    def write_best(
        self, path: str | Path, base: dict | None = None, prefix: str = "", params: dict | None = None
    ) -> Path:
        """The best config as YAML: ``base`` (the pipeline's or trainer's config) with the tuned values set
        (the best trial's, or ``params`` where the study's best is decided elsewhere, as PBT's final member).

        Dotted names (``sampling.temperature``) become nested keys, so the file loads in the config class."""
        data = json.loads(json.dumps(base or {}))
        for name, value in (self.best.params if params is None else params).items():
            node = data
            *parents, leaf = (prefix + name).split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
        return Path(path)
