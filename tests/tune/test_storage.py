"""Study storage: trial numbers unique across processes, running trials of live processes left alone, and a
study in Optuna's RDB storage (a database URL) that two processes share and Optuna itself opens."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from reinforge.errors import ReinforgeError
from reinforge.tune.run import optimize
from reinforge.tune.sampler_base import SearchExhausted
from reinforge.tune.space import Choice, Float, Int
from reinforge.tune.storage import Trial, abandoned
from reinforge.tune.storage_rdb import OptunaStorage
from reinforge.tune.study import Study
from tests.serve.conftest import own_postgres

SPACE = {"x": Float(-2.0, 2.0), "n": Int(1, 4), "kind": Choice(["a", "b"])}


def quadratic(params: dict) -> dict:
    return {"loss": (params["x"] - 1) ** 2 + params["n"], "tokens": 10 * params["n"]}


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


HERE = socket.gethostname()


@pytest.mark.parametrize(
    "state, owner, expected",
    [
        ("running", None, True),  # a trial from before owners were recorded: evaluated again
        ("running", f"{HERE}:{os.getpid()}", True),  # this process's own: it is not running it now
        ("running", f"{HERE}:DEAD", True),  # a process of this machine that has ended
        ("running", f"{HERE}:{os.getppid()}", False),  # a live process of this machine runs it
        ("running", "other-host:1", False),  # another machine's: its own resume takes it
        ("complete", None, False),  # finished trials are never re-run
    ],
)
def test_abandoned(state, owner, expected):
    owner = owner and owner.replace("DEAD", str(dead_pid()))
    assert abandoned(Trial(0, {}, state, attrs={"owner": owner} if owner else {})) is expected


@pytest.mark.parametrize("where", ["file", "url"])
def test_two_studies_on_one_storage_never_share_a_number(tmp_path, where):
    storage = str(tmp_path / "s.db") if where == "file" else f"sqlite:///{tmp_path / 'o.db'}"
    a = Study(SPACE, "random", {"loss": "minimize"}, storage, "shared")
    b = Study(SPACE, "random", {"loss": "minimize"}, storage, "shared")  # a second process, in effect
    asked = [s.ask() for s in (a, b, a, b, b)]  # each asks between the other's asks
    assert [t.number for t in asked] == [0, 1, 2, 3, 4]
    assert len({tuple(sorted(t.params.items())) for t in asked}) == 5  # trial n's draw: n's own
    for t in asked:
        (a if t.number % 2 else b).tell(t.number, quadratic(t.params))  # either side tells any trial
    assert [t.state for t in a.trials] == ["complete"] * 5 and a.best.number == b.best.number


@pytest.mark.parametrize("where", ["file", "url"])
def test_an_exhausted_grid_leaves_no_trial(tmp_path, where):
    storage = str(tmp_path / "s.db") if where == "file" else f"sqlite:///{tmp_path / 'o.db'}"
    study = Study({"k": Choice(["a", "b"])}, "grid", storage=storage)
    for _ in range(2):
        study.tell(study.ask().number, 1.0)
    with pytest.raises(SearchExhausted):
        study.ask()
    assert [t.number for t in study.trials] == [0, 1]  # the number taken for the third is given up


def test_a_database_url_study_is_an_optuna_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = Study(
        SPACE, "tpe", {"loss": "minimize", "tokens": "minimize"}, url, "sweep", constraints=["tokens <= 30"]
    )
    optimize(study, quadratic, n_trials=6)
    study.report(study.ask().number, 2, 0.25)  # one left running with an intermediate value
    again = Study.load(url, "sweep")  # the space, sampler and directions come back from the database
    assert again.objective_names == ["loss", "tokens"] and again.space.to_dict() == study.space.to_dict()
    assert [(t.number, t.params, t.values) for t in again.trials] == [
        (t.number, t.params, t.values) for t in study.trials
    ]
    assert again.trials[-1].state == "running" and again.trials[-1].intermediate == {2: 0.25}
    # Optuna (and so optuna-dashboard) reads the same study: names, parameters, values, metrics
    ostudy = optuna.load_study(study_name="sweep", storage=url)
    assert ostudy.metric_names == ["loss", "tokens"]
    done = [t for t in ostudy.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 6
    assert {"x", "n", "kind"} <= set(done[0].params) and done[0].user_attrs["tokens"] == 10 * done[0].params[
        "n"
    ]
    assert done[0].values == study.trials[0].values
    with pytest.raises(ReinforgeError, match="cannot open it as a database"):
        OptunaStorage("nosuchdb://nowhere")


# ------------------------------------------------------------------ two processes on one PostgreSQL


@pytest.fixture(scope="module")
def pg_url():
    """A PostgreSQL server of this module's (skipped when PostgreSQL is not installed)."""
    for pg in own_postgres():
        yield pg.url


def driver(url: str) -> str:
    """The URL as plain Optuna (so optuna-dashboard) takes it with psycopg2 (SQLAlchemy 2.1's default is psycopg 3)."""
    return url.replace("postgresql://", "postgresql+psycopg2://")


def _worker(url: str, started, ended, out) -> None:
    """One process of a shared study: 5 trials; its first waits until the other process has one running."""
    study = Study(SPACE, "random", {"loss": "minimize"}, url, "shared", seed=0)
    mine: list[int] = []

    def objective(params: dict) -> dict:
        if not mine:
            started.wait(timeout=60)  # both processes hold a running trial before either tells one
        mine.append(params["n"])
        return quadratic(params)

    optimize(study, objective, n_trials=5)
    ended.wait(timeout=60)  # then each reads the study after both are done
    out.put((len(mine), [(t.number, t.state) for t in study.trials]))


def test_two_processes_share_one_postgres_study(pg_url):
    ctx = mp.get_context("fork")
    started, ended, out = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(pg_url, started, ended, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    (ran_a, seen_a), (ran_b, seen_b) = (out.get(timeout=10) for _ in procs)
    # each process runs until the study held 5 trials when it started, plus its own: 9 or 10 in all
    total = ran_a + ran_b
    assert min(ran_a, ran_b) >= 4 and total in (9, 10)
    # both see every trial, each number once, every one complete: neither ran nor re-ran the other's
    assert seen_a == seen_b == [(n, "complete") for n in range(total)]
    ostudy = optuna.load_study(study_name="shared", storage=driver(pg_url))
    assert [t.number for t in ostudy.trials] == list(range(total))
    assert len({tuple(sorted(t.params.items())) for t in ostudy.trials}) == total  # no draw repeated


def test_reinforge_tune_on_a_database_url(pg_url, tmp_path):
    """The CLI with ``storage: postgresql://...``: the study is Optuna's, a second run joins it with --resume."""
    config = Path(__file__).parents[2] / "examples" / "tune" / "function.yaml"
    args = [sys.executable, "-m", "reinforge", "tune", str(config), "--set", f"storage={pg_url}"]
    args += ["--set", "sampler=random", "--set", "n_trials=3", "--set", f"output_dir={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 2 and "study 'branin' exists; pass --resume" in again.stderr
    joined = subprocess.run(
        [*args, "--set", "n_trials=5", "--resume"], capture_output=True, text=True, env=env
    )
    assert joined.returncode == 0, joined.stdout + joined.stderr
    ostudy = optuna.load_study(study_name="branin", storage=driver(pg_url))
    assert [t.number for t in ostudy.trials] == [0, 1, 2, 3, 4]  # 3, then 2 more by the run that joined
    assert all(set(t.params) == {"x1", "x2"} and t.value is not None for t in ostudy.trials)
