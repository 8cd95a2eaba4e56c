"""``reinforge tune CONFIG.yaml``: run a study from YAML; the CLI's ``tune ask|tell|show`` verbs call
:mod:`~reinforge.tune.manual`.

- ``reinforge tune CONFIG.yaml [--set k=v] [--resume] [--yes]``: estimate the cost, run the study with
  a progress bar, print the best trials, write ``trials.csv``, ``trials.json``, plots and ``best.yaml``.
- ``reinforge tune ask STUDY``: print the next configuration to try (STUDY is a study's SQLite file,
  or a config YAML whose ``storage`` holds it; the study is created on first use).
- ``reinforge tune tell STUDY TRIAL VALUE``: record a score (``0.8`` or ``0.8,120`` for two objectives).
- ``reinforge tune show STUDY``: the table of trials, and the exports and plots.

This module only orchestrates: the config schema is :mod:`~reinforge.tune.schema`, the objective and the
cost gate :mod:`~reinforge.tune.factory`, tables and outputs :mod:`~reinforge.tune.report`, the manual
verbs :mod:`~reinforge.tune.manual`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reinforge.config import load_config, read_yaml
from reinforge.errors import ReinforgeError
from reinforge.train.trackers import check_installed, report_trial
from reinforge.tune.factory import ScoreRenamer, build_objective, build_study, check_estimate
from reinforge.tune.report import print_table, rich_progress, write_outputs
from reinforge.tune.run import Budget, optimize
from reinforge.tune.schema import TuneConfig
from reinforge.tune.space import Space
from reinforge.tune.storage_rdb import is_url, open_storage
from reinforge.tune.train_objective import TrainObjective, run_pbt


def run_config(cfg: TuneConfig, config_path: Path | None, resume: bool, yes: bool, echo=print):
    """Run the study ``cfg`` describes (or PBT), print the best trials and write the outputs."""
    base_dir = config_path.parent if config_path else Path(".")
    space = Space.from_dict(cfg.space)
    out = Path(cfg.output_dir)
    objective = build_objective(cfg, base_dir)
    best_base = cfg.best_config
    if isinstance(best_base, str):
        best_base = read_yaml(base_dir / best_base if not Path(best_base).exists() else best_base)
    if cfg.pbt is not None:
        summary, pbt_study = run_pbt(
            cfg.pbt, objective, space, out, cfg.seed, cfg.executor, cfg.workers, echo
        )
        paths = write_outputs(pbt_study, out, best_base, summary["best_params"])  # a row per member segment
        echo(f"wrote {out / 'pbt_summary.json'}, {', '.join(str(p) for p in paths)}")
        return summary
    where = cfg.study_storage
    exists = (is_url(where) or Path(where).exists()) and cfg.study in open_storage(where).study_names()
    if exists and not resume:
        raise ReinforgeError(
            f"{where}: study {cfg.study!r} exists; pass --resume to continue it or set another study/storage"
        )
    if isinstance(objective, TrainObjective) and not exists:
        objective.check_fresh(cfg.study)
    if hasattr(objective, "score_name"):
        objective = ScoreRenamer(objective)
    check_estimate(
        cfg, objective.inner if isinstance(objective, ScoreRenamer) else objective, space, yes, echo
    )
    study = build_study(cfg)
    check_installed(cfg.report_to)
    bar, update = rich_progress(cfg.n_trials)
    with bar:
        optimize(
            study,
            objective,
            cfg.n_trials,
            cfg.scheduler,
            cfg.executor,
            cfg.workers,
            Budget(**cfg.budget.model_dump()),
            callbacks=[trial_reporter(cfg)] if cfg.report_to else [],
            progress=update,
        )
    print_table(study)
    paths = write_outputs(study, out, best_base)
    echo(f"wrote {', '.join(str(p) for p in paths)}")
    return study


def trial_reporter(cfg: TuneConfig):
    """The callback sending each finished trial to ``report_to``'s trackers: its objective values and
    numeric metrics, as a run named ``STUDY/trial-N``."""

    def report(study, trial) -> None:
        metrics = {**trial.attrs, **dict(zip(study.objective_names, trial.values or []))}
        number, params, out = trial.number, trial.params, Path(cfg.output_dir)
        report_trial(cfg.report_to, out, cfg.study, number, params, metrics, cfg.tracker_args)

    return report


def run_study(path: Path, overrides: list[str], resume: bool, yes: bool) -> Any:
    """``reinforge tune CONFIG.yaml``: load the config (with ``--set`` overrides) and run it."""
    return run_config(load_config(TuneConfig, path, overrides), path, resume, yes)
