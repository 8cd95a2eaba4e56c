"""Old import path of the job -> trainer-config mapping, which lives in ``reinforge.openai_compat`` now."""

from __future__ import annotations

from reinforge.openai_compat import job_config as build_config
from reinforge.openai_compat import run_training

__all__ = ["build_config", "run_training"]
