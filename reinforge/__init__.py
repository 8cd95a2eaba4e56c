"""reinforge: make LLM systems better from graded feedback.

A grader turns a model output into a score; the score either trains weights (RFT/GRPO, RLHF/PPO,
DPO, SFT) or tunes knobs (prompts, sampling, RAG and training hyperparameters).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["graders", "tune", "__version__"]


def __getattr__(name: str):
    # `from reinforge import tune` without importing torch-heavy modules up front
    if name in ("graders", "tune", "train", "models", "data", "tasks", "serve"):
        return importlib.import_module(f"reinforge.{name}")
    raise AttributeError(name)
