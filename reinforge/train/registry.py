"""CLI dispatch: algorithm name -> its config class and training function, run by the one
:func:`reinforge.train.skeleton.main` (config file + ``--set`` overrides, the unfinished-run guard)."""

from __future__ import annotations

import importlib
from pathlib import Path

from reinforge.errors import ReinforgeError
from reinforge.train.skeleton import main

# algorithm -> (module, config class, training function ``f(cfg, resume=...) -> summary``)
TRAINERS = {
    "rft": ("reinforge.train.grpo", "GRPOConfig", "train_grpo"),
    "sft": ("reinforge.train.sft_trainer", "SFTConfig", "train_sft"),
    "rm": ("reinforge.train.reward", "RMConfig", "train_reward_model"),
    "ppo": ("reinforge.train.ppo", "PPOConfig", "train_ppo"),
    "dpo": ("reinforge.train.dpo", "DPOConfig", "train_dpo"),
    "rlhf": ("reinforge.train.rlhf", "RLHFConfig", "run_rlhf"),
}


def run_from_cli(algo: str, config: Path | None, overrides: list[str], resume: bool):
    module_name, config_cls, train = TRAINERS[algo]
    try:
        module = importlib.import_module(module_name)  # each trainer's imports load only when it runs
    except ModuleNotFoundError as e:
        raise ReinforgeError(f"{algo}: trainer not available ({e.name})") from None
    return main(getattr(module, config_cls), getattr(module, train), config, overrides, resume)
