"""``reinforge runs compare RUN_DIR...``: a table of runs side by side and one plot of a metric against step.

Each run directory is one ``reinforge rft|sft|rm|ppo|dpo`` run (``metrics.jsonl``, ``summary.json``). The
table shows each run's algorithm, status, steps, seconds, the metric's first, last and best value and the
summary's headline figures; the plot draws the metric of every run against step (``--metric``, default the
first of ``eval/reward_mean``, ``eval/accuracy``, ``eval/loss``, ``reward/mean`` that the runs logged).
``cli.py`` registers the command with its one-line user errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from reinforge.errors import ReinforgeError

DEFAULT_METRICS = ("eval/reward_mean", "eval/accuracy", "eval/loss", "reward/mean")
# summary.json fields worth a column when a run has them
HEADLINES = ("baseline_val_reward", "final_val_reward", "val_accuracy", "final_train_reward")


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict]]:
    """(summary or {}, metrics records) of one run directory."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise ReinforgeError(f"{run_dir}: not a run directory (no metrics.jsonl); give a run's output_dir")
    records = []
    for line in metrics.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    summary_path = run_dir / "summary.json"
    return (json.loads(summary_path.read_text()) if summary_path.is_file() else {}), records


def series(records: list[dict], metric: str) -> list[tuple[int, float]]:
    """(step, value) of ``metric`` in the records that hold it (eval records for ``eval/`` names)."""
    return [(r["step"], float(r[metric])) for r in records if isinstance(r.get(metric), int | float)]


def compare_runs(
    run_dirs: list[Path], metric: str | None, output: Path
) -> tuple[str, list[dict[str, Any]], Path]:
    """(the metric compared, one table row per run, the plot written to ``output``)."""
    runs = [(d, *load_run(d)) for d in run_dirs]
    if metric is None:
        metric = next((m for m in DEFAULT_METRICS if all(series(r, m) for _, _, r in runs)), None)
        if metric is None:
            raise ReinforgeError(
                f"runs compare: no metric of {', '.join(DEFAULT_METRICS)} is in every run; pass --metric NAME"
            )
    names = [d.name for d in run_dirs]
    unique = len(set(names)) == len(names)  # a run is its directory's name unless two share one
    rows = []
    for d, summary, records in runs:
        points = series(records, metric)
        if not points:
            names = sorted({k for r in records for k in r if k not in ("step", "kind")})
            raise ReinforgeError(f"{d}: no {metric!r} in metrics.jsonl (it has: {', '.join(names[:12])})")
        values = [v for _, v in points]
        best = min(values) if "loss" in metric else max(values)
        row = {
            "run": d.name if unique else str(d),
            "algorithm": summary.get("algorithm", "?"),
            "status": summary.get("status", "?"),
        }
        row |= {"steps": summary.get("steps"), "seconds": summary.get("seconds")}
        row |= {"first": values[0], "last": values[-1], "best": best}
        row |= {k: summary[k] for k in HEADLINES if isinstance(summary.get(k), int | float)}
        rows.append(row)
    plot(runs, metric, output)
    return metric, rows, output


def plot(runs: list[tuple[Path, dict, list[dict]]], metric: str, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for d, _, records in runs:
        ax.plot(*zip(*series(records, metric)), "o-" if metric.startswith("eval/") else "-", label=d.name)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{metric} by run")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)


def print_rows(metric: str, rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs compared on {metric}", header_style="bold")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for c in columns:
        table.add_column(c, justify="left" if c in ("run", "algorithm", "status") else "right")
    for row in rows:
        cells = [row.get(c) for c in columns]
        table.add_row(*("" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in cells))
    Console().print(table)


def compare(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="Run directories to compare.")],
    metric: Annotated[
        str | None, typer.Option(help="Logged metric to compare (default: eval/reward_mean or the like).")
    ] = None,
    output: Annotated[Path, typer.Option(help="The comparison plot (PNG).")] = Path("runs-compare.png"),
) -> None:
    """Print a table of the runs side by side and write one plot of a metric against step."""
    name, rows, path = compare_runs(run_dirs, metric, output)
    print_rows(name, rows)
    typer.echo(f"wrote {path}")


def runs_app(user_errors: Callable) -> typer.Typer:
    """The ``runs`` command group, its commands wrapped in ``user_errors`` (cli.py's one-line errors)."""
    app = typer.Typer(help="Look at finished runs: `runs compare RUN_DIR...`.", no_args_is_help=True)
    app.command("compare")(user_errors(compare))
    return app
