"""CLI dispatch: algorithm name -> the trainer module's ``main(config_path, overrides, resume)``."""

from __future__ import annotations

import importlib
from pathlib import Path

from reinforge.errors import ReinforgeError

TRAINERS = {
    "rft": "reinforge.train.grpo",
    "sft": "reinforge.train.sft_trainer",
    "rm": "reinforge.train.reward",
    "ppo": "reinforge.train.ppo",
    "dpo": "reinforge.train.dpo",
    "rlhf": "reinforge.train.rlhf",
}


def run_from_cli(algo: str, config: Path, overrides: list[str], resume: bool):
    try:
        module = importlib.import_module(TRAINERS[algo])
    except ModuleNotFoundError as e:
        raise ReinforgeError(f"{algo}: trainer not available ({e.name})") from None
    return module.main(config, overrides, resume)
