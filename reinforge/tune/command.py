"""``reinforge tune``: run a study from YAML, or the manual ask/tell mode.

- ``reinforge tune CONFIG.yaml [--set k=v] [--resume] [--yes]``: estimate the cost, run the study with
  a progress bar, print the best trials, write ``trials.csv``, ``trials.json``, plots and ``best.yaml``.
- ``reinforge tune ask STUDY``: print the next configuration to try (STUDY is a study's SQLite file,
  or a config YAML whose ``storage`` holds it; the study is created on first use).
- ``reinforge tune tell STUDY TRIAL VALUE``: record a score (``0.8`` or ``0.8,120`` for two objectives).
- ``reinforge tune show STUDY``: the table of trials, and the exports and plots.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Literal

from reinforge.config import Config, load_config
from reinforge.errors import ConfigError, ReinforgeError
from reinforge.tune.space import SpaceSpec
from reinforge.tune.train_objective import PBTSettings, TrainObjective, run_pbt


class ObjectiveSettings(Config):
    type: Literal["rag", "generation", "train", "python"]  # what is tuned
    # -- rag
    documents: str | None = None  # JSONL of {"id", "text", "title"?}
    questions: str | None = None  # JSONL of {"question", "doc_id"}
    # -- generation
    model: str | None = None  # local HF dir or tiny:<task>:<size>
    task: str = "addition"  # built-in task giving the validation rows and the grader
    examples: int = 64  # validation rows graded per trial
    shots: int = 8  # pool of train rows for few-shot examples
    grader: dict | str | None = None  # OpenAI grader JSON (default: the task's grader)
    # -- train
    base: dict | str | None = None  # a GRPO config (inline or a YAML path) the tuned values go into
    # -- python
    function: str | None = None  # "package.module:function", objective(params) or (params, budget)


class BudgetSettings(Config):
    trials: int | None = None  # stop after this many trials
    examples: int | None = None  # stop after this many graded examples
    tokens: int | None = None  # stop after this many generated tokens
    seconds: float | None = None  # stop after this many seconds
    cost_usd: float | None = None  # stop once trials cost this much at `prices`


class PriceSettings(Config):
    input_per_1k: float = 0.0  # money per 1000 prompt tokens
    output_per_1k: float = 0.0  # money per 1000 completion tokens


class TuneConfig(Config):
    """A study: space, objective(s), sampler, scheduler, budget, executor, outputs."""

    study: str = "study"  # study name inside the storage file
    storage: str | None = None  # SQLite file (default: <output_dir>/study.db)
    output_dir: str = "runs/tune"  # exports, plots, best.yaml, training runs
    space: SpaceSpec  # name -> {type: int|float|bool|choice|text, ...}; a list is a choice
    objective: ObjectiveSettings
    objectives: dict[str, Literal["minimize", "maximize"]] = {"score": "maximize"}  # metric -> direction
    constraints: list[str] = []  # "metric <= number" over the objective's metrics
    sampler: str | dict = (
        "bayes"  # bayes|tpe|gp|cmaes|nsga2|random|quasirandom|grid|evolution, or {name: ...}
    )
    n_trials: int = 30  # trials to run (the budget may stop sooner)
    seed: int = 0  # seed of the sampler
    scheduler: dict | None = None  # {type: asha|hyperband|halving|paired, min_budget, max_budget, eta}
    executor: str | dict = "local"  # local | processes | {type: ray, address: auto}
    workers: int = 1  # trials run at once
    budget: BudgetSettings = BudgetSettings()
    prices: PriceSettings = PriceSettings()
    estimate_probes: int = 2  # probe configurations for the cost estimate (0: skip it)
    pbt: PBTSettings | None = None  # train objectives only: population-based training instead of a search
    best_config: dict | str | None = None  # base config the best values are merged into for best.yaml

    @property
    def storage_path(self) -> Path:
        return Path(self.storage) if self.storage else Path(self.output_dir) / "study.db"


def build_objective(cfg: TuneConfig, base_dir: Path):
    o = cfg.objective

    def path(p: str | None, key: str) -> str:
        if not p:
            raise ConfigError(f"objective.{key}: required for objective type {o.type}")
        q = Path(p)
        return str(q if q.is_absolute() or q.exists() else base_dir / q)

    if o.type == "rag":
        from reinforge.tune.rag import rag_objective

        obj = rag_objective(
            path(o.documents, "documents"), path(o.questions, "questions"), cache=cfg.storage_path
        )
        obj.score_name = "recall"
        return obj
    if o.type == "generation":
        from reinforge.tune.generation import generation_objective

        if not o.model:
            raise ConfigError("objective.model: required for objective type generation")
        obj = generation_objective(
            o.model,
            o.task,
            o.examples,
            o.shots,
            cfg.seed,
            o.grader,
            cfg.storage_path,
            cfg.prices.input_per_1k,
            cfg.prices.output_per_1k,
        )
        obj.score_name = "reward"
        return obj
    if o.type == "train":
        if o.base is None:
            raise ConfigError("objective.base: give the GRPO config (inline or a YAML path) to tune")
        base = path(o.base, "base") if isinstance(o.base, str) else o.base
        max_budget = (cfg.scheduler or {}).get("max_budget")  # the LR schedule spans the longest trial
        return TrainObjective(base, Path(cfg.output_dir) / "runs" / cfg.study, max_budget)
    if not o.function or ":" not in o.function:
        raise ConfigError("objective.function: write it as 'package.module:function'")
    mod, _, attr = o.function.partition(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"objective.function {o.function!r}: cannot import ({e})") from None


def check_estimate(cfg: TuneConfig, objective, space, yes: bool, echo=print) -> dict | None:
    """Print the cost estimate; refuse past a budget cap unless ``yes``."""
    from reinforge.tune.objectives import ExampleObjective, estimate_cost

    if not isinstance(objective, ExampleObjective) or cfg.estimate_probes <= 0:
        return None
    per_trial = cfg.scheduler.get("max_budget") if cfg.scheduler else None
    est = estimate_cost(objective, space, cfg.n_trials, per_trial, probes=cfg.estimate_probes, seed=cfg.seed)
    lo, hi = est["seconds_range"]
    duration = lambda s: f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"  # noqa: E731
    echo(
        f"estimate for {cfg.n_trials} trials from a timed pilot ({est['pilot_examples']} examples graded): "
        f"at most {est['examples']:.0f} graded examples, {est['model_calls']:.0f} model calls, "
        f"{est['tokens']:.0f} tokens, ${est['cost_usd']:.2f}; time about {duration(est['seconds'])} "
        f"({duration(lo)} to {duration(hi)} at the pilot's fastest and slowest trial, after "
        f"{est['setup_s']:.0f} s loading; cache hits, a scheduler and other load change it)"
    )
    caps = {"examples": "examples", "tokens": "tokens", "cost_usd": "cost_usd", "seconds": "seconds"}
    for key, cap_name in caps.items():
        cap = getattr(cfg.budget, cap_name)
        if cap is not None and est[key] > cap and not yes:
            raise ReinforgeError(
                f"estimated {key} {est[key]:.4g} exceeds budget.{cap_name}={cap}; pass --yes to "
                f"start anyway (the study stops at the cap) or raise budget.{cap_name}"
            )
    return est


def short_params(params: dict, limit: int = 100) -> str:
    """``k=v`` pairs with floats at 4 significant digits and long texts cut, for tables."""
    parts = []
    for k, v in params.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, str):
            v = repr(v if len(v) <= 27 else v[:24] + "...")
        parts.append(f"{k}={v}")
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def print_table(study, echo=None, top: int = 10) -> None:
    from rich.console import Console
    from rich.table import Table

    done = study.finished()
    if not done:
        (echo or print)("no finished trials")
        return
    sign = 1 if study.directions[0] == "minimize" else -1
    front = {t.number for t in study.best_trials}
    rows = sorted(done, key=lambda t: (not t.feasible, t.number not in front, sign * t.values[0]))[:top]
    table = Table(
        title=f"study {study.name}: {len(study.trials)} trials, best first (* Pareto front, x infeasible)"
    )
    table.add_column("trial", justify="right")
    for name, d in zip(study.objective_names, study.directions):
        table.add_column(f"{name} ({d[:3]})", justify="right")
    table.add_column("params")
    for t in rows:
        mark = "*" if t.number in front and len(study.directions) > 1 else ""
        mark += "" if t.feasible else " x"  # x: violates a constraint
        table.add_row(f"{t.number}{mark}", *[f"{v:.4g}" for v in t.values], short_params(t.params))
    Console().print(table)


def write_outputs(study, out: Path, best_base: dict | None, best_params: dict | None = None) -> list[Path]:
    """``trials.csv``, ``trials.json``, plots and ``best.yaml`` (the best trial's values, or ``best_params``)."""
    from reinforge.tune.plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    paths = [study.export(out / "trials.csv"), study.export(out / "trials.json")]
    paths += write_plots(study, out / "plots")
    if study.finished():
        paths.append(study.write_best(out / "best.yaml", best_base, params=best_params))
    return paths


def rich_progress(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("tune"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[best]}"),
    )
    task = bar.add_task("trials", total=total, best="")

    def update(study, trial) -> None:
        best = ""
        try:
            best = f"best {study.objective_names[0]}={study.best.values[0]:.4g}"
        except ReinforgeError:
            pass
        bar.update(task, completed=len([t for t in study.trials if t.state != "running"]), best=best)

    return bar, update


def run_config(cfg: TuneConfig, config_path: Path | None, resume: bool, yes: bool, echo=print):
    from reinforge.tune.run import Budget, optimize
    from reinforge.tune.space import Space
    from reinforge.tune.study import Study

    base_dir = config_path.parent if config_path else Path(".")
    space = Space.from_dict(cfg.space)
    out = Path(cfg.output_dir)
    objective = build_objective(cfg, base_dir)
    best_base = cfg.best_config
    if isinstance(best_base, str):
        from reinforge.config import read_yaml

        best_base = read_yaml(base_dir / best_base if not Path(best_base).exists() else best_base)
    if cfg.pbt is not None:
        summary, pbt_study = run_pbt(
            cfg.pbt, objective, space, out, cfg.seed, cfg.executor, cfg.workers, echo
        )
        paths = write_outputs(pbt_study, out, best_base, summary["best_params"])  # a row per member segment
        echo(f"wrote {out / 'pbt_summary.json'}, {', '.join(str(p) for p in paths)}")
        return summary
    from reinforge.tune.storage import Storage

    exists = cfg.storage_path.exists() and cfg.study in Storage(cfg.storage_path).study_names()
    if exists and not resume:
        raise ReinforgeError(
            f"{cfg.storage_path}: study {cfg.study!r} exists; pass --resume to continue it "
            "or set another study/storage"
        )
    if isinstance(objective, TrainObjective) and not exists:
        objective.check_fresh(cfg.study)
    if hasattr(objective, "score_name"):
        objective = ScoreRenamer(objective)
    check_estimate(
        cfg, objective.inner if isinstance(objective, ScoreRenamer) else objective, space, yes, echo
    )
    study = Study(
        space,
        cfg.sampler,
        cfg.objectives,
        cfg.storage_path,
        cfg.study,
        cfg.seed,
        cfg.constraints or None,
        cfg.n_trials,
    )
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
            progress=update,
        )
    print_table(study)
    paths = write_outputs(study, out, best_base)
    echo(f"wrote {', '.join(str(p) for p in paths)}")
    return study


class ScoreRenamer:
    """Expose an example objective's ``score`` under its task's name (``recall``, ``reward``)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, params: dict, budget: int | None = None) -> dict:
        m = self.inner(params, budget)
        return {**m, self.inner.score_name: m["score"]}


def open_study(target: str, overrides: list[str]):
    """A study from its SQLite file, or from a config YAML (created there on first use)."""
    from reinforge.tune.study import Study

    p = Path(target)
    if p.suffix in (".yaml", ".yml"):
        cfg = load_config(TuneConfig, p, overrides)
        from reinforge.tune.space import Space

        return Study(
            Space.from_dict(cfg.space),
            cfg.sampler,
            cfg.objectives,
            cfg.storage_path,
            cfg.study,
            cfg.seed,
            cfg.constraints or None,
            cfg.n_trials,
        )
    name = None
    if ":" in target and not p.exists():
        target, name = target.rsplit(":", 1)
    return Study.load(target, name)


def tune_command(args: list[str], overrides: list[str], resume: bool, yes: bool) -> Any:
    usage = "usage: reinforge tune CONFIG.yaml | ask STUDY | tell STUDY TRIAL VALUE | show STUDY"
    if not args:
        raise ReinforgeError(usage)
    verb = args[0]
    if verb == "ask":
        if len(args) != 2:
            raise ReinforgeError("usage: reinforge tune ask STUDY (a study .db file or its config .yaml)")
        study = open_study(args[1], overrides)
        trial = study.ask()
        print(f"trial {trial.number}")
        print(json.dumps(trial.params, indent=1, default=str))
        print(f"# when done: reinforge tune tell {args[1]} {trial.number} VALUE")
        return trial
    if verb == "tell":
        if len(args) != 4:
            raise ReinforgeError(
                "usage: reinforge tune tell STUDY TRIAL VALUE (VALUE: 0.8, or 0.8,120 for two objectives)"
            )
        study = open_study(args[1], overrides)
        try:
            number = int(args[2])
            values = [float(v) for v in args[3].split(",")]
        except ValueError:
            raise ReinforgeError(
                f"tell: TRIAL must be an integer and VALUE numbers, got {args[2]!r} {args[3]!r}"
            ) from None
        known = {t.number: t for t in study.trials}
        if number not in known:
            raise ReinforgeError(f"tell: study has no trial {number}; ask first")
        if known[number].state != "running":
            raise ReinforgeError(f"tell: trial {number} is already {known[number].state}")
        if len(values) != len(study.directions):
            raise ReinforgeError(
                f"tell: the study has {len(study.directions)} objectives "
                f"({', '.join(study.objective_names)}); give that many values separated by commas"
            )
        trial = study.tell(number, values)
        print(
            f"trial {number}: {trial.state} {dict(zip(study.objective_names, values))}; "
            f"best so far {study.best.values} {json.dumps(study.best.params, default=str)}"
        )
        return trial
    if verb == "show":
        if len(args) != 2:
            raise ReinforgeError("usage: reinforge tune show STUDY")
        study = open_study(args[1], overrides)
        print_table(study)
        out = (
            Path(args[1]).with_suffix("")
            if Path(args[1]).suffix == ".db"
            else Path(study.storage.path).parent
        )
        paths = write_outputs(study, out, None)
        print(f"wrote {', '.join(str(p) for p in paths)}")
        return study
    if len(args) != 1:
        raise ReinforgeError(usage)
    cfg = load_config(TuneConfig, args[0], overrides)
    return run_config(cfg, Path(args[0]), resume, yes)
