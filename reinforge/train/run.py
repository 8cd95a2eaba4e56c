"""One run directory per run: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``final/``,
``summary.json`` and ``rewards.png``. Shared by every trainer.

Logged metric names are namespaced (documented in ``docs/metrics.md``): ``reward/mean``, ``kl/k3``,
``loss/policy``, ``clip/fraction``, ``perf/tokens_per_s``, ``eval/reward_mean``, ``eval/pass@k``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from reinforge.errors import ReinforgeError


class MetricsLog:
    """Append-only ``metrics.jsonl``: one object per train step (``kind: train``) and per eval.

    On resume from a checkpoint at step S, records with ``step > S`` (logged after that checkpoint,
    before the kill) are dropped first, so no step is logged twice or lost.
    """

    def __init__(self, path: Path, resume_step: int | None = None, read_only: bool = False):
        self.path = Path(path)  # read_only: a rank other than 0 reads the log rank 0 writes
        if read_only:
            return
        if resume_step is None:
            self.path.write_text("")
        else:
            self.truncate_after(resume_step)

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            self.path.write_text("")
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            if rec.get("step", 0) <= step:
                keep.append(json.dumps(rec))
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        tmp.replace(self.path)

    def log(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        """Nothing to flush: :meth:`log` syncs each record to disk as it writes it."""

    def records(self, kind: str | None = None) -> list[dict]:
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if kind is None or r.get("kind") == kind]


def prepare_run_dir(output_dir: Path, resume: bool, config_yaml: str) -> Path:
    """Create the run directory; refuse to overwrite a finished or half-done run unless resuming."""
    run = Path(output_dir)
    if run.exists() and not resume and (run / "metrics.jsonl").exists():
        if (run / "summary.json").exists() or (run / "checkpoints").exists():
            raise ReinforgeError(
                f"{run}: a run already exists there; pass --resume to continue it or choose another output_dir"
            )
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(config_yaml)
    return run


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    path = Path(run_dir) / "summary.json"
    tmp = path.with_name("summary.json.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(path)


def plot_metric(
    run_dir: Path,
    records: list[dict],
    train_key: str = "reward/mean",
    eval_key: str = "eval/reward_mean",
    filename: str = "rewards.png",
    title: str = "reward",
) -> Path:
    """PNG of a train metric and its validation counterpart against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [
        (r["step"], r[train_key])
        for r in records
        if r.get("kind") == "train" and r.get(train_key) is not None
    ]
    ev = [
        (r["step"], r[eval_key]) for r in records if r.get("kind") == "eval" and r.get(eval_key) is not None
    ]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    if tr:
        ax.plot(*zip(*tr), label=f"train {train_key}", alpha=0.7)
    if ev:
        ax.plot(*zip(*ev), "o-", label=f"validation {eval_key}")
    ax.set_xlabel("step")
    ax.set_ylabel(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(run_dir) / filename
    fig.savefig(out)
    plt.close(fig)
    return out
