"""Studies: resume after a kill (no finished trial lost, no model call repeated), exports, plots, best YAML."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

from reinforge import tune
from reinforge.errors import ReinforgeError
from reinforge.tune.study import Study

KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from reinforge import tune
    from reinforge.graders.base import CallableGrader
    from reinforge.tune.objectives import ExampleObjective

    db, log, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rows = [{"x": i, "answer": str(i % 3)} for i in range(12)]
    n_trials_seen = []

    def pipeline(params, batch):
        if batch[0]["x"] == 0:
            n_trials_seen.append(1)
        if kill_at and len(n_trials_seen) == kill_at and batch[0]["x"] >= 6:
            os.kill(os.getpid(), signal.SIGKILL)  # die mid-trial (a call in flight), half its examples graded
        with open(log, "a") as f:  # one line per completed model call
            for r in batch:
                f.write(f"{params['a']},{params['b']},{r['x']}\\n")
        return [str((r["x"] * params["a"] + params["b"]) % 3) for r in batch]

    grader = CallableGrader(lambda item, s: float(s["output_text"] == item["answer"]))
    obj = ExampleObjective(pipeline, rows, grader, cache=db, batch_size=3, shuffle_seed=None)
    space = {"a": tune.Int(0, 5), "b": tune.Int(0, 5)}
    study = tune.run(obj, space, sampler="tpe", n_trials=10, seed=0, direction="maximize", metric="score",
                     storage=db, study_name="s")
    print(len(study.trials))
""")


def test_resume_after_kill_loses_nothing_and_repeats_no_call(tmp_path):
    script, db, log = tmp_path / "run.py", tmp_path / "study.db", tmp_path / "calls.log"
    script.write_text(KILLED_RUN)
    r = subprocess.run([sys.executable, str(script), str(db), str(log), "6"], capture_output=True, text=True)
    assert r.returncode == -9, r.stderr  # killed
    before = Study.load(db, "s").trials
    done_before = {t.number: (t.params, t.values) for t in before if t.state == "complete"}
    assert len(done_before) == 5 and before[-1].state == "running"
    r = subprocess.run([sys.executable, str(script), str(db), str(log), "0"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = Study.load(db, "s").trials
    assert len(after) == 10 and all(t.state == "complete" for t in after)
    for number, (params, values) in done_before.items():  # every finished trial kept as it was
        assert (after[number].params, after[number].values) == (params, values)
    assert after[5].params == before[5].params  # the interrupted trial was finished, not replaced
    calls = log.read_text().splitlines()
    assert len(calls) == len(set(calls)), "a model call was repeated"


def test_cache_shared_across_trials_and_studies(tmp_path):
    from reinforge.graders.base import CallableGrader
    from reinforge.tune.objectives import ExampleObjective

    calls = []
    rows = [{"x": i, "answer": "0"} for i in range(5)]

    def pipeline(params, batch):
        calls.extend(batch)
        return [str(params["a"]) for _ in batch]

    obj = ExampleObjective(
        pipeline,
        rows,
        CallableGrader(lambda i, s: float(s["output_text"] == i["answer"])),
        cache=tmp_path / "c.db",
    )
    space = {"a": tune.Int(0, 2)}
    tune.run(obj, space, sampler="grid", n_trials=3, direction="maximize", metric="score")
    tune.run(obj, space, sampler="grid", n_trials=3, direction="maximize", metric="score")  # all cached
    assert len(calls) == 15


def _study(tmp_path, n=12):
    space = {"x": tune.Float(0, 1), "k": tune.Int(1, 4), "mode": tune.Choice(["a", "b"])}
    return tune.run(
        lambda p: {"quality": p["x"] + 0.1 * p["k"], "tokens": 100 * p["k"] + 10 * p["x"]},
        space,
        sampler="random",
        n_trials=n,
        directions={"quality": "maximize", "tokens": "minimize"},
        storage=tmp_path / "s.db",
        study_name="mo",
    )


def test_export_csv_json_and_best_yaml(tmp_path):
    study = _study(tmp_path)
    rows = list(csv.DictReader(study.export(tmp_path / "t.csv").open()))
    assert len(rows) == 12 and {"quality", "tokens", "params.x", "params.mode"} <= set(rows[0])
    data = json.loads(study.export(tmp_path / "t.json").read_text())
    assert data["directions"] == ["maximize", "minimize"] and len(data["trials"]) == 12
    best = yaml.safe_load(study.write_best(tmp_path / "best.yaml", {"model": "m", "x": 0}).read_text())
    assert best["model"] == "m" and best["x"] == study.best.params["x"]


def test_best_yaml_nests_dotted_names(tmp_path):
    study = tune.run(
        lambda p: p["sampling.temperature"],
        {"sampling.temperature": tune.Float(0, 1)},
        sampler="random",
        n_trials=3,
    )
    out = yaml.safe_load(study.write_best(tmp_path / "b.yaml").read_text())
    assert out["sampling"]["temperature"] == study.best.params["sampling.temperature"]


def test_plots_written(tmp_path):
    from reinforge.tune.plots import parameter_importance, write_plots

    study = _study(tmp_path, 15)
    paths = write_plots(study, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["history.png", "importance.png", "pareto.png"]
    assert all(p.stat().st_size > 2000 for p in paths)
    imp = parameter_importance(study)
    assert max(imp, key=imp.get) == "x"  # quality is driven by x (k only counts 0.1 per step)


def test_pareto_front_is_exact(tmp_path):
    study = tune.Study({"i": tune.Int(0, 3)}, "random", {"a": "maximize", "b": "minimize"})
    pts = [(1, 1), (2, 2), (2, 3), (0, 0), (1, 2)]  # (1,2) dominated by (1,1); (2,3) by (2,2)
    for a, b in pts:
        t = study.ask()
        study.tell(t.number, {"a": a, "b": b})
    assert sorted(tuple(t.values) for t in study.best_trials) == [(0, 0), (1, 1), (2, 2)]


def test_failed_trial_is_recorded_and_study_goes_on():
    def obj(p):
        if p["x"] > 0.5:
            raise RuntimeError("boom")
        return p["x"]

    study = tune.run(obj, {"x": tune.Float(0, 1)}, sampler="random", n_trials=10, seed=0)
    failed = [t for t in study.trials if t.state == "failed"]
    assert failed and "boom" in failed[0].attrs["error"]
    assert study.best.params["x"] <= 0.5


def test_parallel_local_workers(tmp_path):
    import threading

    seen = set()

    def obj(p):
        seen.add(threading.get_ident())
        return p["x"]

    study = tune.run(
        obj, {"x": tune.Float(0, 1)}, sampler="random", n_trials=8, workers=2, storage=tmp_path / "p.db"
    )
    assert len(study.trials) == 8 and all(t.state == "complete" for t in study.trials)
    assert len({t.number for t in study.trials}) == 8


def test_space_from_yaml_and_errors():
    import pytest

    from reinforge.errors import ConfigError
    from reinforge.tune.space import Space

    s = Space.from_dict(
        {
            "k": {"type": "int", "low": 1, "high": 9, "step": 2},
            "r": ["bm25", "dense"],
            "p": {"type": "text", "variants": ["Answer.", "Reply."]},
            "w": {"type": "float", "low": 0, "high": 1, "when": {"r": "dense"}},
        }
    )
    assert s["k"].grid(10) == [1, 3, 5, 7, 9] and s["p"].values == ["Answer.", "Reply."]
    with pytest.raises(ConfigError, match="space.w.when"):
        Space.from_dict({"w": {"type": "float", "low": 0, "high": 1, "when": {"r": "dense"}}})
    with pytest.raises(ConfigError, match="space.x.type"):
        Space.from_dict({"x": {"type": "real"}})


def test_best_when_no_trial_is_feasible_is_the_least_violating():
    for directions in ({"q": "maximize"}, {"q": "maximize", "c": "minimize"}):
        study = tune.run(
            lambda p: {"q": p["x"], "c": p["x"]},
            {"x": tune.Float(1, 2)},
            sampler="random",
            directions=directions,
            constraints=["c <= 0.5"],
            n_trials=6,
            seed=0,
        )
        assert not study.best_trials and not study.best.feasible
        assert study.best.params["x"] == min(t.params["x"] for t in study.trials)


@pytest.mark.parametrize(
    "number, result, state, what",
    [
        (0, 1.0, "complete", "trial 0 is already complete"),  # re-finishing a told trial
        (1, [1.0, 2.0], "complete", "got 2 values but the study has 1 objectives (value)"),
        (9, 1.0, "complete", "has no trial 9; ask for it first"),  # never asked
        (1, 1.0, "done", "state 'done'; use one of complete, pruned, failed"),
    ],
)
def test_tell_refuses_what_the_cli_refuses_and_records_nothing(number, result, state, what):
    study = Study({"x": tune.Float(0, 1)}, sampler="random")
    study.tell(study.ask().number, 0.5)
    study.ask()  # trial 1, running
    with pytest.raises(ReinforgeError, match=re.escape(what)):
        study.tell(number, result, state)
    assert [(t.state, t.values) for t in study.trials] == [("complete", [0.5]), ("running", None)]
