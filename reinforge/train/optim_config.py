"""The optimisation keys every trainer's config shares, declared and documented once.

``GRPOConfig``, ``PPOConfig``, ``DPOConfig``, ``SFTConfig`` and ``RMConfig`` derive from
:class:`OptimSettings` (itself a ``TrackerSettings``: ``report_to``, ``tracker_args``, in
``train/trackers.py``); the keys stay top-level YAML keys (``learning_rate: 3e-4``, ``--set epochs=2``).
``learning_rate`` has no default here: each algorithm states its own, in one line of its config, and
everything else (the service's jobs, ``learning_rate_multiplier``, tuning) reads that class default.
``Run.optimizer`` (``train/skeleton.py``) turns these keys into AdamW and its schedule, and applies
``precision`` and ``gradient_checkpointing`` (``train/precision.py``).

>>> class Demo(OptimSettings):
...     learning_rate: float = 1e-4  # AdamW peak learning rate
>>> Demo(epochs=2).model_dump()
{'report_to': [], 'tracker_args': {}, 'steps': None, 'epochs': 2.0, 'learning_rate': 0.0001, 'lr_schedule': 'constant', 'warmup_steps': 0, 'weight_decay': 0.0, 'max_grad_norm': 1.0, 'precision': 'auto', 'gradient_checkpointing': False, 'distributed': None}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from reinforge.train.distributed import DistributedSettings
from reinforge.train.precision import Precision, check_precision
from reinforge.train.trackers import TrackerSettings


class OptimSettings(TrackerSettings):
    """AdamW, its learning-rate schedule and the run length; a trainer's config adds its own keys after these."""

    steps: int | None = None  # total steps; default: epochs over the training data
    epochs: float = 1.0  # passes over the training data when steps is not set
    learning_rate: float  # AdamW peak learning rate (each trainer's config sets its default)
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"  # decay after the warm-up
    warmup_steps: int = 0  # steps of linear warm-up from 0
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # clip the gradient norm to this
    # bf16: fp32 master weights and optimizer state, bf16 autocast compute (meant for CUDA); fp32: fp32
    # throughout; auto: weights in the dtype key's dtype, no autocast (train/precision.py)
    precision: Precision = "auto"
    gradient_checkpointing: bool = False  # recompute layers in the backward: less memory, ~1/3 more compute
    # data parallel: null under torchrun (or one process); {backend: ray, workers: N} under Ray Train
    distributed: DistributedSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_dtype(cls, data: Any) -> Any:  # precision bf16/fp32 load fp32 weights
        return check_precision(data, "dtype" in cls.model_fields) if isinstance(data, dict) else data
