"""A study in a database (``postgresql://USER@HOST/DB``, ``mysql://...``, ``sqlite:///FILE``): Optuna's own
RDB storage, so processes on several machines run trials of one study and ``optuna-dashboard URL``
opens it.

:class:`OptunaStorage` is :class:`~reinforge.tune.storage.Storage`'s interface over
``optuna.storages.RDBStorage``. A study is an Optuna study with the same name and directions (our space,
sampler and constraints in its ``reinforge:meta`` system attribute, the objective names as Optuna's
metric names); a trial is an Optuna trial: its number is Optuna's (given out under a lock on the study's
row, so two processes never get the same one), parameters that lie in the space are Optuna parameters
with their distributions, the values, the intermediate values and the state are Optuna's, and the
metrics are its user attributes. Our own copies of the parameters (any JSON value), values and
constraints sit in ``reinforge:*`` system attributes, so a trial reads back exactly as it was told.

:func:`open_storage` picks the storage from what a config's ``storage`` holds: a URL, or a file path
(our SQLite file).

>>> import tempfile, os
>>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "optuna.db")
>>> s = open_storage(url)
>>> s.create_study("demo", {"directions": ["minimize"], "objective_names": ["loss"]})
>>> n = s.new_trial("demo")
>>> s.set_params("demo", n, {"x": 1.0, "model": "small"})
>>> s.finish_trial("demo", n, "complete", [0.5], {"tokens": 12}, None)
>>> t = s.trial("demo", n)
>>> (t.number, t.params, t.state, t.values, t.attrs)
(0, {'x': 1.0, 'model': 'small'}, 'complete', [0.5], {'tokens': 12})
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from reinforge.errors import ReinforgeError
from reinforge.tune.optuna_compat import constraint_attrs
from reinforge.tune.samplers import optuna_params
from reinforge.tune.space import Space
from reinforge.tune.storage import Storage, Trial, owner

STATES = {"running": TrialState.RUNNING, "complete": TrialState.COMPLETE}
STATES.update(pruned=TrialState.PRUNED, failed=TrialState.FAIL)
OURS = {v: k for k, v in STATES.items()} | {TrialState.WAITING: "running"}
META, PARAMS, VALUES, CONSTRAINTS, DROPPED = (
    f"reinforge:{k}" for k in ("meta", "params", "values", "constraints", "dropped")
)


def is_url(storage: str | Path | None) -> bool:
    return isinstance(storage, str) and "://" in storage


def open_storage(storage: str | Path | None) -> Storage | OptunaStorage:
    """A database URL -> :class:`OptunaStorage`; a file path -> our SQLite :class:`Storage`; None: memory."""
    return OptunaStorage(storage) if is_url(storage) and isinstance(storage, str) else Storage(storage)


class OptunaStorage:
    """Studies and trials in Optuna's RDB storage at ``url``; the methods of :class:`Storage` but the
    evaluation cache (that stays in a local SQLite file)."""

    path = None  # not a file: exports go beside the config

    def __init__(self, url: str):
        self.url = url
        if url.startswith("postgresql://"):  # psycopg2, as the service's database (SQLAlchemy 2.1: psycopg 3)
            url = "postgresql+psycopg2://" + url[len("postgresql://") :]
        for attempt in range(5):
            try:
                self.rdb = RDBStorage(url)
                break
            # another process is creating the tables (a type or table "already exists"): then they exist
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
            except Exception as e:  # a bad URL, a server that does not answer, a driver not installed
                raise ReinforgeError(f"storage {self.url}: cannot open it as a database ({e})") from None
        self._spaces: dict[str, Space | None] = {}

    # -- studies
    def _sid(self, study: str) -> int:
        return self.rdb.get_study_id_from_name(study)

    def create_study(self, name: str, meta: dict) -> None:
        directions = [StudyDirection[d.upper()] for d in meta["directions"]]
        try:
            sid = self.rdb.create_new_study(directions, name)
        except optuna.exceptions.DuplicatedStudyError:  # another process made it first: the same study
            sid = self._sid(name)
        self.rdb.set_study_system_attr(sid, META, json.loads(json.dumps(meta, default=str)))
        names = meta.get("objective_names") or []
        if len(names) == len(directions):  # optuna-dashboard labels the objectives with these
            with warnings.catch_warnings():  # experimental since Optuna 3.2, the same call in 4.x and 5.x
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.load_study(study_name=name, storage=self.rdb).set_metric_names(names)

    def study_meta(self, name: str) -> dict | None:
        try:
            return self.rdb.get_study_system_attrs(self._sid(name)).get(META)
        except KeyError:
            return None

    def study_names(self) -> list[str]:
        return sorted(s.study_name for s in self.rdb.get_all_studies())

    # -- trials
    def _tid(self, study: str, number: int) -> int:
        return self.rdb.get_trial_id_from_study_id_trial_number(self._sid(study), number)

    def new_trial(self, study: str) -> int:
        """A running trial under Optuna's next number (unique across processes and machines)."""
        tid = self.rdb.create_new_trial(self._sid(study))
        self.rdb.set_trial_system_attr(tid, "reinforge:owner", owner())
        return self.rdb.get_trial_number_from_id(tid)

    def set_params(self, study: str, number: int, params: dict) -> None:
        tid = self._tid(study, number)
        self.rdb.set_trial_system_attr(tid, PARAMS, json.loads(json.dumps(params, default=str)))
        space = self._space(study)
        if space is None:
            return
        values, dists = optuna_params(space, params)
        for name, value in values.items():  # as Optuna parameters too: the dashboard's plots read these
            dist = dists[name]
            try:
                self.rdb.set_trial_param(tid, name, dist.to_internal_repr(value), dist)
            except ValueError:  # a space edited since earlier trials: ours keeps the value
                pass

    def _space(self, study: str) -> Space | None:
        if study not in self._spaces:
            meta = self.study_meta(study) or {}
            self._spaces[study] = Space.from_dict(meta["space"]) if "space" in meta else None
        return self._spaces[study]

    def drop_trial(self, study: str, number: int) -> None:
        """A reserved trial that got no parameters (the search was exhausted): failed, and hidden."""
        tid = self._tid(study, number)
        self.rdb.set_trial_system_attr(tid, DROPPED, True)
        self.rdb.set_trial_state_values(tid, TrialState.FAIL)

    def report(self, study: str, number: int, budget: int, value: float) -> None:
        self.rdb.set_trial_intermediate_value(self._tid(study, number), budget, value)

    def finish_trial(
        self,
        study: str,
        number: int,
        state: str,
        values: list[float] | None,
        attrs: dict,
        constraints: list[float] | None,
    ) -> None:
        tid = self._tid(study, number)
        for key, value in json.loads(json.dumps(attrs, default=str)).items():
            self.rdb.set_trial_user_attr(tid, key, value)
        for key, value in {VALUES: values, CONSTRAINTS: constraints, **constraint_attrs(constraints)}.items():
            self.rdb.set_trial_system_attr(tid, key, value)
        complete = state == "complete" and values is not None
        self.rdb.set_trial_state_values(tid, STATES[state], values if complete else None)

    def trials(self, study: str) -> list[Trial]:
        try:
            sid = self._sid(study)
        except KeyError:
            return []
        return [to_trial(t) for t in self.rdb.get_all_trials(sid) if not t.system_attrs.get(DROPPED)]

    def trial(self, study: str, number: int) -> Trial:
        try:
            return to_trial(self.rdb.get_trial(self._tid(study, number)))
        except KeyError:
            raise ReinforgeError(f"study {study!r}: no trial {number}") from None

    def close(self) -> None:
        self.rdb.remove_session()
        self.rdb.engine.dispose()


def to_trial(t: FrozenTrial) -> Trial:
    """An Optuna trial as a study sees it (its ``reinforge:*`` copies where they exist)."""
    sys_attrs = t.system_attrs
    state = OURS[t.state]
    return Trial(
        t.number,
        sys_attrs.get(PARAMS, t.params),
        state,
        sys_attrs.get(VALUES, t.values),
        dict(t.intermediate_values),
        dict(t.user_attrs) if state != "running" else {"owner": sys_attrs.get("reinforge:owner")},
        sys_attrs.get(CONSTRAINTS),
        t.datetime_start.timestamp() if t.datetime_start else None,
        t.datetime_complete.timestamp() if t.datetime_complete else None,
    )
