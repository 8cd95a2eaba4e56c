"""What a study shows and writes: the table of best trials, the progress bar, exports, plots, best.yaml."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reinforge.errors import ReinforgeError
from reinforge.tune.plots import write_plots


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
    """The ``top`` finished trials, feasible and Pareto-front ones first, as a rich table."""
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
    out.mkdir(parents=True, exist_ok=True)
    paths = [study.export(out / "trials.csv"), study.export(out / "trials.json")]
    paths += write_plots(study, out / "plots")
    if study.finished():
        paths.append(study.write_best(out / "best.yaml", best_base, params=best_params))
    return paths


def rich_progress(total: int):
    """A progress bar over ``total`` trials and the ``update(study, trial)`` callback that moves it."""
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
