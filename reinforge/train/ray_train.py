"""The same trainers under Ray Train: ``distributed: {backend: ray, workers: N, use_gpu: false}``.

Ray's ``TorchTrainer`` starts ``workers`` processes (on a cluster, wherever Ray places them), sets up
their ``torch.distributed`` process group (gloo on CPU workers, NCCL with one GPU each) and runs the
trainer in each; the trainer then runs as under ``torchrun`` (``train/distributed.py``: whole prompt
groups per rank, gradients averaged, rank 0 writes the run directory). The run directory must be on
storage every worker's machine sees (a shared directory); on one machine it is simply ``output_dir``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reinforge.errors import ReinforgeError


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the trainer, in the process group Ray made, in the caller's directory where
    this machine has it (Ray starts workers elsewhere; a config's relative paths are the caller's)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if os.path.isdir(config["cwd"]):
        os.chdir(config["cwd"])
    config["train"](config["cfg"], resume=config["resume"])


def user_error(e: BaseException | None) -> ReinforgeError | None:
    """The user error (a ReinforgeError) a worker raised, found inside Ray's wrappers; None if none."""
    seen: set[int] = set()
    todo = [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        inner = getattr(x, "cause", None)  # a RayTaskError holds the worker's own exception
        if isinstance(x, ReinforgeError) and not isinstance(inner, BaseException):
            return x
        todo += [x.__cause__, inner, *getattr(x, "worker_failures", {}).values()]
    return None


def run_on_ray(train: Callable[..., dict], cfg: Any, resume: bool) -> dict[str, Any]:
    """Run ``train(cfg, resume=resume)`` on ``cfg.distributed.workers`` Ray Train workers; returns the
    summary rank 0 wrote."""
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError:
        raise ReinforgeError("distributed.backend: ray needs ray[train]; pip install 'ray[train]'") from None
    d = cfg.distributed
    out = Path(cfg.output_dir).resolve()
    if not ray.is_initialized():
        local: dict[str, Any] = (
            {"num_cpus": max(1, int(d.workers * d.cpus_per_worker))} if d.address is None else {}
        )
        ray.init(address=d.address, include_dashboard=False, log_to_driver=True, **local)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"train": train, "cfg": cfg, "resume": resume, "cwd": os.getcwd()},
        scaling_config=ScalingConfig(
            num_workers=d.workers,
            use_gpu=d.use_gpu,
            resources_per_worker={"CPU": d.cpus_per_worker, **({"GPU": 1} if d.use_gpu else {})},
        ),
        run_config=RunConfig(name="ray", storage_path=str(out)),  # Ray's own records: output_dir/ray/
    )
    try:
        trainer.fit()
    except Exception as e:  # Ray wraps a worker's error: a user error comes back as its one line
        err = user_error(e)
        if err is None:
            raise
        ray.shutdown()  # the workers' forwarded logs end before the one line
        raise ReinforgeError(str(err)) from None
    return json.loads((out / "summary.json").read_text())
