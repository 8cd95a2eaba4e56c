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
    """One Ray Train worker: the trainer, in the process group Ray made."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    config["train"](config["cfg"], resume=config["resume"])


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
        local = {"num_cpus": max(1, int(d.workers * d.cpus_per_worker))} if d.address is None else {}
        ray.init(address=d.address, include_dashboard=False, log_to_driver=True, **local)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"train": train, "cfg": cfg, "resume": resume},
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
        cause = e
        while cause is not None and not isinstance(cause, ReinforgeError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
    return json.loads((out / "summary.json").read_text())
