"""Studies of training runs: one GRPO run per trial (``TrainObjective``, and ``grpo_member`` for PBT, both
through ``train_trial``), and PBT from a tune config.

A trial's run directory is ``<output_dir>/runs/<study>/trial-<number>``. It is keyed by the trial's
number, not by its parameters: a trial promoted by ASHA or Hyperband and a trial re-run by ``--resume``
continue their own checkpoint, and two trials never share a run, even when a sampler proposes the same
values twice (a second trial with equal values would otherwise resume the first one's longer run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reinforge.config import Config, load_config
from reinforge.errors import ConfigError
from reinforge.tune.pbt import TrainFn, pbt


class PBTSettings(Config):
    population: int = 4  # members trained side by side
    interval: int = 10  # steps between exploit/explore rounds
    total_steps: int = 40  # training steps of each member
    quantile: float = 0.25  # bottom quantile copies the top quantile
    resample_prob: float = 0.2  # chance that explore redraws a value instead of perturbing it
    baseline: bool = True  # also train the same population with fixed hyperparameters, for comparison


def train_trial(
    base: Any,
    params: dict,
    run_dir: Path,
    steps: int | None = None,
    schedule_steps: int | None = None,
    **fixed,
) -> dict:
    """Train one trial: the GRPO config ``base`` with the tuned ``params`` (and ``fixed`` settings) in
    ``run_dir``, resuming the run's own checkpoint there. With ``steps``, it stops at that total step of
    one learning-rate schedule spanning ``schedule_steps``, and checkpoints there for the next segment or
    rung. Returns the run's summary."""
    from reinforge.train.grpo import train_grpo  # torch and transformers (~4 s): only train studies need them

    update = {**params, "output_dir": str(run_dir), "progress": False, **fixed}
    if steps is not None:
        update.update(steps=steps, save_interval=steps, schedule_steps=max(steps, schedule_steps or steps))
    cfg = type(base).model_validate({**base.model_dump(), **update})  # validation runs on the tuned values
    return train_grpo(cfg, resume=(Path(run_dir) / "checkpoints").exists())


class TrainObjective:
    """Train one GRPO run per trial under ``root/trial-N``. Under a scheduler the budget is the step
    count: a promoted trial resumes its own checkpoint, and the learning-rate schedule spans
    ``max_budget`` steps, so each rung continues one schedule instead of restarting it."""

    wants_trial = True  # tune.run.optimize passes trial=<the trial's number>

    def __init__(self, base: dict | str, root: str | Path, max_budget: int | None = None):
        from reinforge.train.grpo import GRPOConfig  # as in train_trial

        self.base = load_config(GRPOConfig, base, source="objective.base")
        self.root = Path(root)
        self.max_budget = max_budget

    def __call__(self, params: dict, budget: int | None = None, *, trial: int) -> dict:
        summary = train_trial(self.base, params, self.root / f"trial-{trial}", budget, self.max_budget)
        return {
            "val_reward": summary["final_val_reward"],
            "baseline_val_reward": summary["baseline_val_reward"],  # the base model's, before any step
            "steps": summary["steps"],
            "examples_graded": 0,
            "seconds": summary["seconds"],
        }

    def check_fresh(self, study: str) -> None:
        """Refuse a new study where trial runs are left from an earlier one (its checkpoints would be
        resumed as if they were this study's trials)."""
        if self.root.is_dir() and any(self.root.glob("trial-*")):
            raise ConfigError(
                f"{self.root}: runs of an earlier study {study!r} are there but the study is not in its "
                "storage; delete the folder or set another study/output_dir"
            )


def grpo_member(
    base: Any, total_steps: int, keys: dict[str, str] | None = None, quiet: bool = True
) -> TrainFn:
    """A PBT member that trains reinforge's GRPO: ``base`` is a ``GRPOConfig``; ``keys`` maps tuned
    names to config fields (default: the same names). Scores are the validation reward.

    Each segment stops at its ``until`` step of one learning-rate schedule spanning ``total_steps`` (the
    population's final step), so a decaying schedule continues across segments instead of restarting."""

    def train(params: dict, run_dir: Path, until: int) -> float:
        tuned = {(keys or {}).get(k, k): v for k, v in params.items()}
        progress = not quiet and base.progress
        summary = train_trial(base, tuned, run_dir, until, total_steps, keep_checkpoints=1, progress=progress)
        return float(summary["final_val_reward"])

    return train


def run_pbt(
    p: PBTSettings,
    objective: Any,
    space,
    out: Path,
    seed: int,
    executor: Any,
    workers: int,
    echo=print,
) -> tuple[dict, Any]:
    """PBT of the objective's GRPO config (and the fixed-hyperparameter baseline); writes
    ``out/pbt_summary.json``. Returns the summary and the study: one trial per (member, segment)."""
    if not isinstance(objective, TrainObjective):
        raise ConfigError("pbt: only for objective type train (a trainer that checkpoints and resumes)")
    train = grpo_member(objective.base, p.total_steps)
    res = pbt(
        train,
        space,
        out / "pbt",
        p.population,
        p.interval,
        p.total_steps,
        p.quantile,
        resample_prob=p.resample_prob,
        seed=seed,
        executor=executor,
        workers=workers,
    )
    summary = {k: v for k, v in res.items() if k != "study"}
    run = json.loads((out / "pbt" / f"member-{res['best_member']}" / "summary.json").read_text())
    summary["baseline_val_reward"] = run["baseline_val_reward"]  # the base model's, before any step
    echo(
        f"PBT: best member {res['best_member']} val_reward={res['best_score']:.4f} params={res['best_params']}; "
        f"median {res['median_score']:.4f}; {len(res['lineage'])} exploits; "
        f"before training {run['baseline_val_reward']:.4f}"
    )
    if p.baseline:
        initial = [m["history"][0]["params"] for m in res["members"]]
        base = pbt(
            train,
            space,
            out / "fixed",
            p.population,
            p.interval,
            p.total_steps,
            0.0,
            seed=seed,
            initial=initial,
            executor=executor,
            workers=workers,
        )
        summary["fixed_median_score"] = base["median_score"]
        summary["fixed_scores"] = base["scores"]
        echo(f"fixed hyperparameters: median val_reward={base['median_score']:.4f} scores={base['scores']}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "pbt_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary, res["study"]
