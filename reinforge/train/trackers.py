"""Experiment trackers as metric sinks: ``report_to: [tensorboard, wandb, mlflow, trackio]``.

Each tracker is one :class:`~reinforge.train.skeleton.MetricSink`: it sees every record ``metrics.jsonl``
sees (train and eval, in order) and maps its ``step`` and namespaced names (``reward/mean``,
``eval/reward_mean``) onto its own calls. ``Run`` (``train/skeleton.py``) checks the packages when the run
starts and opens the sinks on rank 0 only, beside ``metrics.jsonl``; ``tune`` opens one per trial.

Where each writes, honouring the tracker's own environment variables:

- tensorboard: event files under ``<output_dir>/tensorboard/`` (a resumed run purges the steps after
  its checkpoint, as ``metrics.jsonl`` does);
- wandb: ``WANDB_MODE=offline`` works without a network; ``WANDB_PROJECT``/``WANDB_ENTITY``/``WANDB_DIR``
  are wandb's own (default project ``reinforge``, default dir the run directory); a resumed run
  continues the same wandb run (its id is kept in ``<output_dir>/trackers.json``);
- mlflow: ``MLFLOW_TRACKING_URI`` (``file:///path`` for a file store) and ``MLFLOW_EXPERIMENT_NAME``;
- trackio: ``TRACKIO_DIR``; project ``reinforge`` unless ``tracker_args.trackio.project``.

``tracker_args`` passes keyword arguments to a tracker's ``init`` (``wandb: {project, entity, name,
tags}``, as OpenAI's fine-tuning ``integrations`` do). Names and values are logged as they are, except
that MLflow's metric names keep only the characters MLflow allows (``eval/pass@4`` -> ``eval/pass_4``).

>>> TrackerSettings(report_to=["tensorboard"]).report_to
['tensorboard']
>>> numeric({"step": 3, "kind": "train", "reward/mean": 0.5, "note": "x", "done": True, "nan": None})
{'reward/mean': 0.5}
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from reinforge.config import Config
from reinforge.errors import ConfigError

Tracker = Literal["tensorboard", "wandb", "mlflow", "trackio"]
# tracker -> (module imported, the pip extra that installs it)
PACKAGES: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "trackio": ("trackio", "trackio"),
}


class TrackerSettings(Config):
    """The tracker keys every trainer's config shares (``OptimSettings`` derives from this)."""

    # experiment trackers that receive every logged record besides metrics.jsonl (rank 0 only);
    # each needs its extra: pip install 'reinforge[trackers]'
    report_to: list[Tracker] = []
    # per tracker, keyword arguments of its init (wandb: project, entity, name, tags)
    tracker_args: dict[Tracker, dict[str, Any]] = {}


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The record's finite numbers by name (``step``, ``kind``, text and booleans left out)."""
    return {
        k: float(v)
        for k, v in record.items()
        if k not in ("step", "kind")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
    }


def check_installed(names: Sequence[str], source: str = "report_to") -> None:
    """One line naming the extra for the first tracker whose package is missing."""
    for name in names:
        module, extra = PACKAGES[name]
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"{source}: {name} needs the {module} package, which is not installed; "
                f"pip install 'reinforge[{extra}]' (every tracker: 'reinforge[trackers]')"
            ) from None


class TensorBoardSink:
    def __init__(self, log_dir: Path, purge_step: int | None, **kwargs):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step, **kwargs)

    def log(self, record: dict[str, Any]) -> None:
        for key, value in numeric(record).items():
            self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    def __init__(self, run_dir: Path, name: str, config: dict, run_id: str | None, **kwargs):
        import wandb

        kwargs.setdefault("project", None if os.environ.get("WANDB_PROJECT") else "reinforge")
        kwargs.setdefault("name", name)
        kwargs.setdefault("dir", os.environ.get("WANDB_DIR") or str(run_dir))
        self.run = wandb.init(config=config, id=run_id, resume="allow" if run_id else None, **kwargs)
        self.id = self.run.id

    def log(self, record: dict[str, Any]) -> None:
        self.run.log(numeric(record), step=record["step"])

    def close(self) -> None:
        self.run.finish()


_MLFLOW_BAD = re.compile(r"[^\w\-. :/]")


class MLflowSink:
    def __init__(self, name: str, config: dict, run_id: str | None, **kwargs):
        import mlflow

        self.mlflow = mlflow
        kwargs.setdefault("run_name", name)
        try:
            self.run = mlflow.start_run(run_id=run_id, **({} if run_id else kwargs))
        except mlflow.exceptions.MlflowException as e:  # e.g. MLflow 3's file store needs opting into
            raise ConfigError(f"report_to: mlflow (MLFLOW_TRACKING_URI): {e.message}") from None
        self.id = self.run.info.run_id
        if run_id is None:
            mlflow.log_params({k: str(v)[:6000] for k, v in flatten(config).items()})

    def log(self, record: dict[str, Any]) -> None:
        values = {_MLFLOW_BAD.sub("_", k): v for k, v in numeric(record).items()}
        self.mlflow.log_metrics(values, step=record["step"])

    def close(self) -> None:
        self.mlflow.end_run()


class TrackioSink:
    def __init__(self, name: str, config: dict, **kwargs):
        import trackio

        kwargs.setdefault("project", "reinforge")
        kwargs.setdefault("name", name)
        self.trackio = trackio
        self.run = trackio.init(config=config, **kwargs)

    def log(self, record: dict[str, Any]) -> None:
        self.trackio.log(numeric(record), step=record["step"])

    def close(self) -> None:
        self.trackio.finish()


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"lora": {"r": 8}}`` -> ``{"lora.r": 8}``."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def open_trackers(
    names: Sequence[str],
    run_dir: Path,
    config: dict,
    resume_step: int | None = None,
    args: Mapping[Any, dict[str, Any]] | None = None,
    name: str | None = None,
    tensorboard_dir: Path | None = None,
) -> list:
    """One sink per tracker in ``names`` for the run in ``run_dir`` (the tracker's run is called ``name``,
    default the directory's name; tensorboard writes to ``tensorboard_dir``, default
    ``run_dir/tensorboard``). ``resume_step``: the run resumed after that step (tensorboard purges later
    steps; wandb and mlflow continue the run ids kept in ``run_dir/trackers.json``)."""
    check_installed(names)
    args, name = args or {}, name or run_dir.name
    ids_path = run_dir / "trackers.json"
    ids = json.loads(ids_path.read_text()) if resume_step is not None and ids_path.exists() else {}
    sinks: list = []
    for tracker in names:
        kwargs = dict(args.get(tracker, {}))
        if tracker == "tensorboard":
            purge = None if resume_step is None else resume_step + 1
            sinks.append(TensorBoardSink(tensorboard_dir or run_dir / "tensorboard", purge, **kwargs))
        elif tracker == "trackio":
            sinks.append(TrackioSink(name, config, **kwargs))
        elif tracker == "wandb":
            sinks.append(WandbSink(run_dir, name, config, ids.get(tracker), **kwargs))
        else:
            sinks.append(MLflowSink(name, config, ids.get(tracker), **kwargs))
        if hasattr(sinks[-1], "id"):
            ids[tracker] = sinks[-1].id
    if ids and tensorboard_dir is None:
        ids_path.write_text(json.dumps(ids))
    return sinks


def report_trial(
    names: Sequence[str],
    out_dir: Path,
    study: str,
    number: int,
    params: dict,
    metrics: dict[str, Any],
    args: Mapping[Any, dict[str, Any]] | None = None,
) -> None:
    """A tuning trial as one tracker run, ``STUDY/trial-N``: its parameters as the run's config, its
    objective values and metrics at step 0; tensorboard's under ``out_dir/tensorboard/trial-N``."""
    tb_dir = Path(out_dir) / "tensorboard" / f"trial-{number}"
    config = {"study": study, "trial": number, **params}
    for sink in open_trackers(names, Path(out_dir), config, None, args, f"{study}/trial-{number}", tb_dir):
        sink.log({"step": 0, **metrics})
        sink.close()
