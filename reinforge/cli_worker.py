"""``reinforge worker``: job workers on any machine against the service's database; ``cli.py`` registers
it (with its one-line user errors) and ``serve/command.py`` does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def worker(
    db: Annotated[str, typer.Option(help="The service's database URL (postgresql://... across machines).")],
    data_dir: Annotated[
        Path, typer.Option(help="The service's data directory: storage every machine shares, same path.")
    ] = Path("reinforge-data"),
    gpus: Annotated[
        str | None, typer.Option(help="GPUs to train on, one job each, e.g. 0,1 (default: --workers).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Job worker processes when no --gpus are given.")] = 1,
    heartbeat_timeout: Annotated[
        float, typer.Option(help="Seconds without a heartbeat after which a running job is requeued.")
    ] = 60.0,
) -> None:
    """Train fine-tuning jobs from the service's queue on this machine, until Ctrl-C or SIGTERM.

    Serve the API alone with `reinforge serve --db URL --workers 0`, then run `reinforge worker --db URL
    --data-dir DIR [--gpus 0,1]` on each training machine.
    """
    from reinforge.serve.command import worker_command

    ids = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    worker_command(db, data_dir, ids, workers, heartbeat_timeout)
