"""The manual mode of ``reinforge tune``, for when a trial is dear or scored by hand: ``ask`` prints the
next configuration, ``tell`` records its score, ``show`` prints the table and writes the exports.

A study is named by its SQLite file, or by a config YAML whose ``storage`` holds it (the study is created
there on first use); ``FILE.db:NAME`` picks one study of several. ``Study.tell`` checks what is told.
"""

from __future__ import annotations

import json
from pathlib import Path

from reinforge.config import load_config
from reinforge.errors import ReinforgeError
from reinforge.tune.factory import build_objective, build_study
from reinforge.tune.report import print_table, write_outputs
from reinforge.tune.schema import TuneConfig
from reinforge.tune.storage import Trial
from reinforge.tune.study import Study
from reinforge.tune.tryout import estimate_line, is_llm_study, try_params


def open_study(target: str, overrides: list[str]) -> Study:
    """A study from its SQLite file, or from a config YAML (created there on first use)."""
    p = Path(target)
    if p.suffix in (".yaml", ".yml"):
        return build_study(load_config(TuneConfig, p, overrides))
    return load_study(target)


def load_study(target: str) -> Study:
    """A study from ``FILE.db`` (its only study) or ``FILE.db:NAME``."""
    p = Path(target)
    name = None
    if ":" in target and not p.exists():
        target, name = target.rsplit(":", 1)
    return Study.load(target, name)


def ask(target: str, overrides: list[str]) -> Trial:
    """Start the next trial and print its parameters; for a config whose objective calls a model, also
    what the trial will cost, from a dry run of its configuration on one example."""
    p = Path(target)
    cfg = load_config(TuneConfig, p, overrides) if p.suffix in (".yaml", ".yml") else None
    priced = cfg is not None and is_llm_study(cfg) and cfg.estimate_probes > 0
    objective = build_objective(cfg, p.parent) if priced and cfg else None  # the endpoint checked first
    trial = (build_study(cfg) if cfg else load_study(target)).ask()
    print(f"trial {trial.number}")
    print(json.dumps(trial.params, indent=1, default=str))
    if objective is not None:
        print(f"# {estimate_line(try_params(objective, trial.params, 1)['estimate'], 1)}")
    print(f"# when done: reinforge tune tell {target} {trial.number} VALUE")
    return trial


def tell(target: str, trial: str, value: str, overrides: list[str]) -> Trial:
    """Record trial ``trial``'s score: ``0.8``, or ``0.8,120`` for two objectives."""
    study = open_study(target, overrides)
    try:
        number = int(trial)
        values = [float(v) for v in value.split(",")]
    except ValueError:
        raise ReinforgeError(
            f"tell: TRIAL must be an integer and VALUE numbers, got {trial!r} {value!r}"
        ) from None
    try:
        told = study.tell(number, values)
    except ReinforgeError as e:
        raise ReinforgeError(f"tell: {e}") from None
    print(
        f"trial {number}: {told.state} {dict(zip(study.objective_names, values))}; "
        f"best so far {study.best.values} {json.dumps(study.best.params, default=str)}"
    )
    return told


def show(target: str, overrides: list[str]) -> Study:
    """Print the table of trials; write the exports and plots beside the study's file."""
    study = open_study(target, overrides)
    print_table(study)
    path = study.storage.path
    out = Path(target).with_suffix("") if Path(target).suffix == ".db" or path is None else path.parent
    paths = write_outputs(study, out, None)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return study
