"""Tuning benchmarks, side by side in one run (``python -m benchmarks.bench_tune [--only NAMES]``).

1. ``synthetic``: Branin and Hartmann-6, 50 trials, median over 10 seeds of the best value found:
   our ``random``, our ``bayes`` (Optuna's TPE and GP through our ask/tell wrapper) and plain Optuna
   TPE (its own loop) in the same run. Done when bayes < random and ours-TPE ~ Optuna-TPE.
2. ``schedulers``: RAG retriever space (120 configurations x 64 questions): graded examples Hyperband
   and ASHA spend to reach the best score a full grid finds. Done when <= 40% of the grid's.
3. ``rag``: the example's default retriever vs the tuned one (40 trials), the tuned one scored by 2-fold
   cross-validation on questions the tuner never saw. Done when the gain is >= 0.15 recall@k.
4. ``pbt``: PBT of GRPO on the tiny addition model vs the same population with fixed hyperparameters
   at equal total steps (slow on CPU; ``--only pbt``).

Each measurement is printed as one JSON line; a table follows.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAG = ROOT / "examples" / "rag"


def emit(rec: dict) -> dict:
    print(json.dumps(rec), flush=True)
    return rec


# ---------------------------------------------------------------------------------------------- 1. synthetic


def one_synthetic(fn_name: str, method: str, seed: int, n_trials: int) -> tuple[float, float]:
    """Best value after ``n_trials`` of ``method`` on ``fn_name``; (best, seconds)."""
    import optuna

    from reinforge import tune
    from reinforge.tune import testfns

    fn = {"branin": testfns.branin, "hartmann6": testfns.hartmann6}[fn_name]
    space = {"branin": testfns.branin_space, "hartmann6": testfns.hartmann6_space}[fn_name]()
    t0 = time.perf_counter()
    if method == "optuna-tpe":  # plain Optuna, its own ask/tell loop, same TPE defaults
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        for _ in range(n_trials):
            trial = study.ask()
            study.tell(trial, fn({n: trial.suggest_float(n, p.low, p.high) for n, p in space.items()}))
        return study.best_value, time.perf_counter() - t0
    study = tune.run(fn, space, sampler=method, n_trials=n_trials, seed=seed)
    return study.best.value, time.perf_counter() - t0


def bench_synthetic(seeds: int = 10, n_trials: int = 50, workers: int | None = None) -> list[dict]:
    from reinforge.tune import testfns

    methods = ["random", "tpe", "gp", "optuna-tpe"]
    jobs = [(f, m, s) for f in ("branin", "hartmann6") for m in methods for s in range(seeds)]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with cf.ProcessPoolExecutor(workers or os.cpu_count()) as pool:
        futs = {pool.submit(one_synthetic, f, m, s, n_trials): (f, m) for f, m, s in jobs}
        for fut in cf.as_completed(futs):
            results.setdefault(futs[fut], []).append(fut.result())
    optimum = {"branin": testfns.BRANIN_MIN, "hartmann6": testfns.HARTMANN6_MIN}
    out = []
    for (f, m), vals in sorted(results.items()):
        bests = [v for v, _ in vals]
        out.append(
            emit(
                {
                    "bench": "synthetic",
                    "function": f,
                    "method": m,
                    "trials": n_trials,
                    "seeds": len(vals),
                    "median_best": round(statistics.median(bests), 4),
                    "optimum": optimum[f],
                    "median_seconds": round(statistics.median(s for _, s in vals), 2),
                }
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- 2. schedulers

SCHED_SPACE = {
    "chunk_size": {"type": "choice", "values": [20, 40, 60, 80, 100]},
    "chunk_overlap": {"type": "choice", "values": [0, 10]},
    "k": {"type": "choice", "values": [1, 2, 3, 4]},
    "retriever": ["bm25", "dense", "hybrid"],
}
CONSTRAINT = ["context_tokens <= 100"]


def rag_setup(questions: list[dict] | None = None):
    from reinforge.data.jsonl import read_jsonl
    from reinforge.graders.base import CallableGrader
    from reinforge.tune.objectives import ExampleObjective
    from reinforge.tune.rag import RAGPipeline, recall_at_k

    pipe = RAGPipeline(RAG / "documents.jsonl")
    rows = questions if questions is not None else read_jsonl(RAG / "questions.jsonl")

    def make():  # a fresh (empty) cache per method, the same pipeline (and embeddings) for all
        obj = ExampleObjective(pipe, rows, CallableGrader(recall_at_k), name="rag", batch_size=len(rows))

        def recall(params: dict, budget: int | None = None) -> dict:
            m = obj(params, budget)
            return {**m, "recall": m["score"]}

        return recall

    return make


def bench_schedulers(seeds: int = 3) -> list[dict]:
    from reinforge import tune
    from reinforge.tune.space import Space

    make = rag_setup()
    space = Space.from_dict(SCHED_SPACE)
    grid = tune.run(
        make(),
        space,
        sampler="grid",
        n_trials=10_000,
        directions={"recall": "maximize"},
        constraints=CONSTRAINT,
    )
    grid_examples = grid.spent["examples"]
    target = grid.best.values[0]
    out = [
        emit(
            {
                "bench": "schedulers",
                "method": "grid",
                "configs": len(grid.trials),
                "best_recall": target,
                "graded_examples": grid_examples,
                "fraction_of_grid": 1.0,
            }
        )
    ]
    runs = {"hyperband": lambda: tune.Hyperband(8, 64, eta=2), "asha": lambda: tune.ASHA(8, 64, eta=2)}
    for name, sched in runs.items():
        recs = []
        for seed in range(seeds):
            study = tune.run(
                make(),
                space,
                sampler="random",
                seed=seed,
                n_trials=40,
                scheduler=sched(),
                directions={"recall": "maximize"},
                constraints=CONSTRAINT,
            )
            full = [t for t in study.finished() if t.attrs.get("budget") == 64 and t.feasible]
            best = max((t.values[0] for t in full), default=0.0)
            recs.append((best, study.spent["examples"], len(study.trials)))
        out.append(
            emit(
                {
                    "bench": "schedulers",
                    "method": name,
                    "seeds": seeds,
                    "best_recall_per_seed": [r[0] for r in recs],
                    "reached_grid_best": sum(r[0] >= target for r in recs),
                    "median_graded_examples": statistics.median(r[1] for r in recs),
                    "fraction_of_grid": round(statistics.median(r[1] for r in recs) / grid_examples, 3),
                    "configs": statistics.median(r[2] for r in recs),
                }
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- 3. rag


def bench_rag(seeds: int = 2, n_trials: int = 40) -> list[dict]:
    """Default vs tuned retriever, scored by 2-fold cross-validation: questions are split in two halves
    (one question per document in each); the tuner sees one half, the tuned config is scored on the other,
    then the halves swap. So every question is scored by a config tuned without it."""
    import random

    import yaml

    from reinforge import tune
    from reinforge.data.jsonl import read_jsonl
    from reinforge.tune.space import Space

    cfg = yaml.safe_load((ROOT / "examples/tune/rag.yaml").read_text())
    default = yaml.safe_load((RAG / "default.yaml").read_text())
    rows = read_jsonl(RAG / "questions.jsonl")
    by_doc: dict[str, list[dict]] = {}
    for r in rows:
        by_doc.setdefault(r["doc_id"], []).append(r)
    rng = random.Random(0)
    halves: list[list[dict]] = [[], []]
    for qs in by_doc.values():
        rng.shuffle(qs)
        halves[0].append(qs[0])
        halves[1].extend(qs[1:])
    objs = [rag_setup(h)() for h in halves]
    base_all = rag_setup(rows)()(default)
    out = [
        emit(
            {
                "bench": "rag",
                "config": "default",
                **default,
                "recall": round(base_all["recall"], 4),
                "context_tokens": round(base_all["context_tokens"], 1),
            }
        )
    ]
    gains = []
    for seed in range(seeds):
        heldout = []
        for fold in (0, 1):
            study = tune.run(
                objs[fold],
                Space.from_dict(cfg["space"]),
                sampler="bayes",
                n_trials=n_trials,
                seed=seed,
                directions={"recall": "maximize"},
                constraints=cfg["constraints"],
            )
            test = objs[1 - fold](study.best.params)
            heldout.append(test["recall"])
            emit(
                {
                    "bench": "rag_fold",
                    "seed": seed,
                    "tuned_on": fold,
                    **study.best.params,
                    "tune_recall": round(study.best.values[0], 4),
                    "heldout_recall": round(test["recall"], 4),
                    "context_tokens": round(test["context_tokens"], 1),
                }
            )
        cv = (heldout[0] * len(halves[1]) + heldout[1] * len(halves[0])) / len(rows)
        gains.append(cv - base_all["recall"])
        out.append(
            emit(
                {
                    "bench": "rag",
                    "config": f"tuned (seed {seed}, cross-validated)",
                    "recall": round(cv, 4),
                    "gain": round(gains[-1], 4),
                }
            )
        )
    if gains:
        out.append(
            emit(
                {
                    "bench": "rag",
                    "config": "median cross-validated gain",
                    "gain": round(statistics.median(gains), 4),
                }
            )
        )
    # in-sample: tuned and scored on all questions (what `reinforge tune examples/tune/rag.yaml` reports)
    study = tune.run(
        rag_setup(rows)(),
        Space.from_dict(cfg["space"]),
        sampler="bayes",
        n_trials=n_trials,
        seed=0,
        directions={"recall": "maximize"},
        constraints=cfg["constraints"],
    )
    out.append(
        emit(
            {
                "bench": "rag",
                "config": "tuned on all questions (in-sample)",
                **study.best.params,
                "recall": round(study.best.values[0], 4),
                "gain": round(study.best.values[0] - base_all["recall"], 4),
            }
        )
    )
    return out


# ---------------------------------------------------------------------------------------------- 4. pbt


def bench_pbt(total_steps: int = 12, interval: int = 4, population: int = 4) -> list[dict]:
    import tempfile

    from reinforge.train.grpo import GRPOConfig
    from reinforge.tune.pbt import pbt
    from reinforge.tune.space import Space
    from reinforge.tune.train_objective import grpo_member

    base = GRPOConfig(
        model="tiny:addition:1m",
        task="addition",
        train_examples=256,
        validation_examples=48,
        prompts_per_step=8,
        group_size=8,
        max_new_tokens=6,
        eval_interval=0,
        progress=False,
    )
    space = Space.from_dict(
        {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True},
            "beta": {"type": "float", "low": 0.0, "high": 0.1},
        }
    )
    train = grpo_member(base, total_steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        evolved = pbt(train, space, Path(tmp) / "pbt", population, interval, total_steps, 0.25, seed=0)
        initial = [m["history"][0]["params"] for m in evolved["members"]]
        fixed = pbt(
            train, space, Path(tmp) / "fixed", population, interval, total_steps, 0.0, seed=0, initial=initial
        )
        secs = time.time() - t0
    return [
        emit(
            {
                "bench": "pbt",
                "population": population,
                "total_steps": total_steps,
                "interval": interval,
                "pbt_scores": [round(s, 4) for s in evolved["scores"]],
                "pbt_best": round(evolved["best_score"], 4),
                "fixed_scores": [round(s, 4) for s in fixed["scores"]],
                "fixed_median": round(fixed["median_score"], 4),
                "exploits": len(evolved["lineage"]),
                "seconds": round(secs, 1),
            }
        )
    ]


# ---------------------------------------------------------------------------------------------- table


def print_table(records: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="reinforge tune benchmarks")
    for col in ("bench", "what", "result"):
        t.add_column(col)
    for r in records:
        if r["bench"] == "synthetic":
            t.add_row(
                "synthetic",
                f"{r['function']} {r['method']} ({r['trials']} trials, {r['seeds']} seeds)",
                f"median best {r['median_best']} (optimum {r['optimum']}), {r['median_seconds']} s/run",
            )
        elif r["bench"] == "schedulers":
            best = r.get("best_recall", r.get("best_recall_per_seed"))
            t.add_row(
                "schedulers",
                r["method"],
                f"recall {best}, graded examples "
                f"{r.get('graded_examples', r.get('median_graded_examples'))} "
                f"({100 * r['fraction_of_grid']:.0f}% of grid)",
            )
        elif r["bench"] == "rag":
            t.add_row("rag", r["config"], f"recall@k {r.get('recall', '-')}, gain {r.get('gain', '-')}")
        elif r["bench"] == "pbt":
            t.add_row(
                "pbt",
                f"pop {r['population']}, {r['total_steps']} steps",
                f"PBT best {r['pbt_best']} (scores {r['pbt_scores']}) vs fixed median {r['fixed_median']}",
            )
    Console().print(t)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--only", default="synthetic,schedulers,rag", help="comma list of synthetic,schedulers,rag,pbt"
    )
    ap.add_argument("--seeds", type=int, default=10, help="seeds for the synthetic functions")
    args = ap.parse_args(argv)
    benches = {
        "synthetic": lambda: bench_synthetic(args.seeds),
        "schedulers": bench_schedulers,
        "rag": bench_rag,
        "pbt": bench_pbt,
    }
    records: list[dict] = []
    for name in args.only.split(","):
        t0 = time.time()
        records += benches[name]()
        print(f"# {name}: {time.time() - t0:.0f} s", flush=True)
    print_table(records)
    return records


if __name__ == "__main__":
    main()
