"""Progress bars with live metrics, and the short table a command ends with (rich)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(stderr=True)


class TrainProgress:
    """``with TrainProgress(total, start) as p: p.update(step, {"reward": .5})``; silent when disabled."""

    def __init__(self, total: int, start: int = 0, description: str = "train", enabled: bool = True):
        self.enabled = enabled and sys.stderr is not None
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.enabled,
            transient=False,
        )
        self.task = self.progress.add_task(description, total=total, completed=start, metrics="")

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        text = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        self.progress.update(self.task, completed=step, metrics=text)


def print_table(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in rows.items():
        if isinstance(v, dict):  # e.g. first_grader_error: "step 3  kind ...  message ..."
            v = "  ".join(f"{name} {x}" for name, x in v.items())
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    Console().print(table)
