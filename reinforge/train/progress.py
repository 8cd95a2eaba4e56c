"""Progress bars with live metrics, and the short table a command ends with (rich)."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

console = Console(stderr=True)


class RunElapsedColumn(ProgressColumn):
    """Time since ``started`` (a ``time.time()``): the whole run's, where rich's own column counts only
    since the bar appeared (not model loading and building, the first evaluation or, on resume, the
    time before the kill) and stops at the last step (not the final evaluation)."""

    def __init__(self, started: float):
        super().__init__()
        self.started = started

    def render(self, task) -> Text:
        return Text(str(timedelta(seconds=max(0, int(time.time() - self.started)))), style="progress.elapsed")


class TrainProgress:
    """``with TrainProgress(total, start) as p: p.update(step, {"reward": .5})``; silent when disabled.

    ``started``: when the run started (``time.time()``, moved back on resume), the origin of the elapsed
    time shown (default: now). ``update`` merges the metrics into those shown, so a figure given once
    (the latest validation score) stays until it is given again."""

    def __init__(
        self,
        total: int,
        start: int = 0,
        description: str = "train",
        enabled: bool = True,
        started: float | None = None,
    ):
        self.enabled = enabled and sys.stderr is not None
        self.metrics: dict[str, Any] = {}
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            RunElapsedColumn(time.time() if started is None else started),
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
        self.metrics.update(metrics)
        text = "  ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.metrics.items()
        )
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
