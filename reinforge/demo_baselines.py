"""The demo's SFT baselines, tuned with reinforge's own tuner so that RFT is compared with their best.

Each baseline is a study (:func:`tune_sft`): learning rate and weight decay sampled (Sobol points),
and the number of SFT steps as ASHA's budget: many short runs, the best of each length go on at twice
the steps. Each job is a complete SFT run from scratch with its own cosine schedule over its steps, so
every (parameters, steps) pair evaluated is a finished baseline of that length; the baseline is the
best of them on a tuning set, and its model is kept. Both models get the same trial budget.

Each trial starts from its own initialisation (and data order), :func:`trial_seed`: whether a tiny model
learns a task's skill from 200 rows (addition's ones digit, reversing past three letters) turns on the
initialisation more than on the learning rate, so a study that kept one initialisation for all its trials
would tune the wrong knob and leave the baseline at that one draw (benchmarks/README.md, "Restarts").

The tuning set (:func:`tuning_rows`) is held out from the same split as the validation set the
comparison reports, and disjoint from it: the best of ~10 jobs on one set is flattered (or penalised)
by that set's noise, so the chosen model is scored afresh on the reported set, where RFT is scored too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from reinforge.models.generation import HFBackend
from reinforge.models.tiny import build_model, build_tokenizer, save_tiny
from reinforge.tasks import sft_rows
from reinforge.train.evaluate import evaluate
from reinforge.train.progress import TrainProgress, console
from reinforge.train.sft import sft_warmup
from reinforge.train.warmup import load_model
from reinforge.tune import ASHA, Float, run


@dataclass
class SFTTuning:
    """The trial budget of one baseline's study (the same for both models)."""

    trials: int = 6  # configurations started at the smallest budget
    min_steps: int = 150  # ASHA's first rung
    max_steps: int = 600  # ASHA's last rung: rungs min_steps * eta^k up to this
    eta: float = 2  # the best 1/eta of a rung go on at eta times the steps
    lr_low: float = 1e-3
    lr_high: float = 6e-3  # learning rate, sampled log-uniform in [lr_low, lr_high]
    weight_decay_high: float = 0.1  # weight decay, uniform in [0, weight_decay_high]


def tuning_rows(task, report: list[dict], n: int, seed: int) -> list[dict]:
    """``n`` rows of ``task``'s validation split that are not in ``report`` (by prompt): the set the
    baselines are chosen on, so that the reported set scores them without selection noise."""
    seen = {r["messages"][-1]["content"] for r in report}
    rows = task.make_rows(n + len(report), seed=seed + 1000, split="validation")
    return [r for r in rows if r["messages"][-1]["content"] not in seen][:n]


def trial_seed(seed: int, trial: int) -> int:
    """The initialisation and data-order seed of a study's ``trial``; trial 0 keeps the study's seed.

    >>> [trial_seed(0, t) for t in range(3)], trial_seed(1, 0), trial_seed(1, 2)
    ([0, 1000, 2000], 1, 2001)
    """
    return seed + 1000 * trial


class SFTObjective:
    """One SFT run from scratch per job: ``budget`` steps at the trial's learning rate and weight decay,
    scored on the tuning rows ``val``; the best model of all jobs so far is saved to ``out``."""

    wants_trial = True  # tune.run passes trial=<number>

    def __init__(self, size, rows, val, task, seed: int, out: Path, max_tokens: int, progress: bool = True):
        self.size, self.rows, self.val, self.task = size, sft_rows(rows), val, task
        self.seed, self.out, self.max_tokens, self.progress = seed, Path(out), max_tokens, progress
        self.tok = build_tokenizer()
        self.jobs: list[dict] = []  # every job's parameters, steps and score, in order
        self.best: dict | None = None

    def __call__(self, params: dict, budget: int, *, trial: int) -> dict:
        job_seed = trial_seed(self.seed, trial)  # a promoted trial reruns from the same initialisation
        model = build_model(self.size, job_seed, len(self.tok))
        with TrainProgress(budget, 0, f"{self.size} SFT #{trial}", enabled=self.progress) as bar:
            sft_warmup(
                model,
                self.tok,
                self.rows,
                steps=budget,
                lr=params["learning_rate"],
                weight_decay=params["weight_decay"],
                seed=job_seed,
                on_step=lambda done, loss: bar.update(done, {"loss": loss}),
            )
        backend = HFBackend(model, self.tok)
        score = evaluate(backend, self.tok, self.task.grader, self.val, self.max_tokens)["reward_mean"]
        job = {"trial": trial, "init_seed": job_seed, "sft_steps": budget, **params, "tune_reward": score}
        self.jobs.append(job)
        console.print(
            f"    {self.size} SFT #{trial}: {budget} steps, lr {params['learning_rate']:.2g}, "
            f"wd {params['weight_decay']:.2g}: tuning-set reward {score:.3f}"
        )
        if self.best is None or score > self.best["tune_reward"]:
            self.best = job
            save_tiny(model, self.tok, self.out)
        return {"tune_reward": score, "steps": budget}


def tune_sft(
    size: str,
    rows: list[dict],
    val: list[dict],
    report: list[dict],
    task,
    tuning: SFTTuning,
    seed: int,
    out: Path,
    max_tokens: int,
    progress: bool = True,
) -> dict:
    """Tune SFT of a fresh ``size`` model on ``rows``, choosing on ``val`` (:func:`tuning_rows`); the best
    model goes to ``out`` and is scored on ``report``.

    Returns the best job (``tune_reward``, ``sft_steps``, ``learning_rate``, ``weight_decay``) with its
    reward on ``report`` (``val_reward``), every job, the budget (``tuning``) and the SFT steps all jobs
    trained together."""
    objective = SFTObjective(size, rows, val, task, seed, out, max_tokens, progress)
    space = {
        "learning_rate": Float(tuning.lr_low, tuning.lr_high, log=True),
        "weight_decay": Float(0.0, tuning.weight_decay_high),
    }
    run(
        objective,
        space,
        sampler="quasirandom",
        n_trials=tuning.trials,
        seed=seed,
        direction="maximize",
        metric="tune_reward",
        scheduler=ASHA(tuning.min_steps, tuning.max_steps, tuning.eta),
    )
    assert objective.best is not None  # run() starts at least one trial
    model, tok = load_model(str(out))
    score = evaluate(HFBackend(model, tok), tok, task.grader, report, max_tokens)["reward_mean"]
    return {
        **objective.best,
        "val_reward": score,
        "jobs": objective.jobs,
        "tuning": asdict(tuning),
        "steps_trained": sum(j["sft_steps"] for j in objective.jobs),
    }
