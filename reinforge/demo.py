"""`reinforge demo`: reinforcement fine-tuning in miniature, start to finish on a laptop CPU.

1. SFT a tiny model (~0.9M parameters) on a few hundred labelled examples of a verifiable task.
2. SFT a model 4x its size on the same labelled examples (its best checkpoint is kept, to be fair to it).
3. RFT the small model with GRPO: thousands of *unlabelled* prompts, a grader instead of answers.
4. Compare validation reward on held-out prompts; write ``summary.json`` and plots.

The point, as in OpenAI's RFT results: a grader lets a small model learn from prompts no one labelled,
and beat both its SFT self and a larger SFT-only model trained on the same labels.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from reinforge.models.generation import HFBackend
from reinforge.models.tiny import build_model, build_tokenizer, save_tiny
from reinforge.tasks import get_task, sft_rows
from reinforge.train.evaluate import evaluate
from reinforge.train.grpo import GRPOConfig, train_grpo
from reinforge.train.progress import TrainProgress, console, print_table
from reinforge.train.run import write_summary
from reinforge.train.sft import sft_warmup

# The recipe, in one place. Times are for 2 CPU cores.
DEMO: dict[str, Any] = dict(
    task="addition",
    labelled_examples=200,  # the only labels anyone wrote
    small_size="1m",
    large_size="4m",  # ~4x the parameters of the small model
    # SFT lengths tried, each a fresh run with its own schedule; each model keeps its best on
    # validation. 200 labels overfit after a few hundred steps; the larger model learns more slowly,
    # so its grid starts later and runs longer.
    small_sft_steps=(150, 300, 450, 600),
    large_sft_steps=(300, 450, 600, 900),
    validation_examples=300,
    rft=dict(
        steps=800,
        prompts_per_step=16,
        group_size=8,  # 128 completions per step
        learning_rate=3e-4,
        lr_schedule="cosine",
        warmup_steps=20,
        loss_type="dapo",  # token-level mean: long wrong answers are not diluted per sequence
        beta=0.0,  # no reference model: the grader is exact, there is no reward model to hack
        max_new_tokens=5,
        eval_interval=100,
        save_interval=200,
        train_examples=5000,
    ),
)
QUICK: dict[str, Any] = dict(
    labelled_examples=64,
    small_sft_steps=(30,),
    large_sft_steps=(30,),
    validation_examples=32,
    rft=dict(steps=4, prompts_per_step=4, group_size=4, eval_interval=2, save_interval=2),
)


def sft_best(
    size: str,
    rows: list[dict],
    val: list[dict],
    task,
    steps_grid,
    seed: int,
    out: Path,
    max_tokens: int,
    progress: bool = True,
):
    """One SFT run from scratch per length in ``steps_grid``; keep the model best on validation."""
    tok = build_tokenizer()
    best: tuple[float, int] | None = None
    history = []
    for steps in steps_grid:
        model = build_model(size, seed, len(tok))
        with TrainProgress(steps, 0, f"{size} SFT", enabled=progress) as bar:
            sft_warmup(
                model,
                tok,
                sft_rows(rows),
                steps=steps,
                seed=seed,
                on_step=lambda done, loss: bar.update(done, {"loss": loss}),
            )
        score = evaluate(HFBackend(model, tok), tok, task.grader, val, max_tokens)["reward_mean"]
        history.append({"sft_steps": steps, "val_reward": score})
        console.print(f"    {size} SFT, {steps} steps: validation reward {score:.3f}")
        if best is None or score > best[0]:
            best = (score, steps)
            save_tiny(model, tok, out)
    if best is None:
        raise ValueError("steps_grid is empty: give at least one SFT length")
    return best[0], best[1], history


def plot_demo(out: Path, summary: dict, records: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    ev = [(r["step"], r["eval/reward_mean"]) for r in records if r.get("kind") == "eval"]
    tr = [(r["step"], r["reward/mean"]) for r in records if r.get("kind") == "train"]
    if tr:
        a.plot(*zip(*tr), alpha=0.4, label="train reward (sampled)")
    a.plot(*zip(*ev), "o-", label="validation reward (greedy)")
    a.axhline(summary["larger_sft_val_reward"], color="gray", ls="--", label="4x larger model, SFT only")
    a.set_xlabel("RFT step")
    a.set_ylabel("reward")
    a.legend(loc="lower right", fontsize=8)
    a.grid(alpha=0.3)
    names = ["small SFT", "larger SFT", "small SFT+RFT"]
    vals = [summary["baseline_val_reward"], summary["larger_sft_val_reward"], summary["final_val_reward"]]
    b.bar(names, vals, color=["#999", "#bbb", "#3a7"])
    for i, v in enumerate(vals):
        b.text(i, v + 0.01, f"{v:.2f}", ha="center")
    b.set_ylim(0, 1)
    b.set_ylabel("validation reward")
    fig.tight_layout()
    path = out / "demo.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def run_demo(output_dir: Path = Path("runs/demo"), quick: bool = False, seed: int = 0) -> dict:
    t0 = time.time()
    recipe = {**DEMO, **(QUICK if quick else {})}
    rft_kw = {**DEMO["rft"], **(QUICK["rft"] if quick else {})}
    out = Path(output_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(seed)
    task = get_task(recipe["task"])
    labelled = task.make_rows(recipe["labelled_examples"], seed=seed + 1, split="train")
    val = task.make_rows(recipe["validation_examples"], seed=seed, split="validation")
    mt = rft_kw["max_new_tokens"]

    console.print(
        f"[bold]1/3[/] SFT small ({recipe['small_size']}) and 4x larger ({recipe['large_size']}) models "
        f"on {len(labelled)} labelled {task.name} examples"
    )
    small_score, small_steps, small_hist = sft_best(
        recipe["small_size"], labelled, val, task, recipe["small_sft_steps"], seed, out / "sft-small", mt
    )
    large_score, large_steps, large_hist = sft_best(
        recipe["large_size"], labelled, val, task, recipe["large_sft_steps"], seed, out / "sft-large", mt
    )
    console.print(f"    small SFT: {small_score:.3f}   larger SFT: {large_score:.3f}")

    console.print(
        "[bold]2/3[/] RFT (GRPO) of the small SFT model on unlabelled prompts, graded by the task's grader"
    )
    cfg = GRPOConfig(
        model=str(out / "sft-small"),
        task=task.name,
        output_dir=str(out / "rft"),
        seed=seed,
        validation_examples=recipe["validation_examples"],
        **rft_kw,
    )
    rft = train_grpo(cfg)

    console.print("[bold]3/3[/] summary")
    records = [json.loads(x) for x in (out / "rft" / "metrics.jsonl").read_text().splitlines()]
    summary = {
        "task": task.name,
        "train_examples": len(labelled),
        "rft_prompts_seen": rft_kw["steps"] * cfg.prompts_per_step,
        "validation_examples": len(val),
        "small_model": recipe["small_size"],
        "larger_model": recipe["large_size"],
        "baseline_val_reward": small_score,
        "final_val_reward": rft["final_val_reward"],
        "larger_sft_val_reward": large_score,
        "gain": rft["final_val_reward"] - small_score,
        "small_sft_steps": small_steps,
        "larger_sft_steps": large_steps,
        "sft_history": {"small": small_hist, "larger": large_hist},
        "seconds": round(time.time() - t0, 1),
    }
    write_summary(out, summary)
    plot_demo(out, summary, records)
    shutil.copy(out / "rft" / "rewards.png", out / "rewards.png")
    print_table(f"reinforge demo ({out})", {k: v for k, v in summary.items() if not isinstance(v, dict)})
    return summary
