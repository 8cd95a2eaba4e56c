"""``reinforge demo rlhf``: SFT -> preferences from a hidden gold annotator -> reward model -> PPO and DPO.

1. SFT warms a tiny policy on the ``sentiment`` task: it writes mixed reviews (gold reward ~0.5).
2. The policy samples two reviews per prompt; a simulated annotator with a hidden *gold* preference
   (:func:`reinforge.tasks.sentiment.gold_reward`, never shown to any model) picks the better one.
3. A reward model (the SFT model plus a scalar head) learns from those labels (Bradley-Terry).
4. PPO optimises the learned reward with an adaptive KL penalty; DPO trains on the same pairs.
5. The gold reward, which no model ever saw, is measured before and after; a sweep over fixed
   ``beta`` values plots gold and learned reward against KL: with ``beta = 0`` the learned reward
   keeps rising while the gold reward stalls or falls (over-optimisation of a learned reward).

Writes ``<output_dir>/summary.json`` and ``<output_dir>/beta_sweep.png``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from reinforge.errors import ReinforgeError

TASK = "sentiment"
MAX_NEW_TOKENS = 48  # the longest review is 46 characters


def settings(quick: bool) -> dict:
    """Sizes of every stage; ``quick`` is a smoke test (seconds), not a result."""
    if quick:
        return {
            "sft_steps": 120,
            "comparisons": 160,
            "rm_epochs": 1,
            "ppo_steps": 4,
            "sweep_steps": 2,
            "sweep_betas": [0.0],
            "dpo_epochs": 1,
            "val_prompts": 16,
            "eval_every": 2,
        }
    return {
        "sft_steps": 250,
        "comparisons": 1200,
        "rm_epochs": 2,
        "ppo_steps": 12,
        "sweep_steps": 18,
        "sweep_betas": [0.0, 0.2],
        "dpo_epochs": 1,
        "val_prompts": 64,
        "eval_every": 3,
    }


def run_demo_rlhf(output_dir: Path, quick: bool = False) -> dict:
    import torch

    from reinforge.tasks import get_task
    from reinforge.train.dpo import DPOConfig, train_dpo
    from reinforge.train.ppo import PPOConfig, train_ppo
    from reinforge.train.progress import console, print_table
    from reinforge.train.reward import RMConfig, train_reward_model
    from reinforge.train.rlhf import GraderLabeller, sample_comparisons
    from reinforge.train.run import write_summary
    from reinforge.train.sft_trainer import SFTConfig, train_sft
    from reinforge.train.warmup import load_model

    t0 = time.time()
    out = Path(output_dir)
    if (out / "summary.json").exists():
        raise ReinforgeError(f"{out}: a finished demo is there; remove it or pass --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    s = settings(quick)
    torch.manual_seed(0)
    say = lambda text: console.print(f"[bold cyan]demo rlhf[/] {text}")  # noqa: E731

    # 1. SFT
    say(f"1/5 SFT: a tiny policy learns to write (mixed) reviews, {s['sft_steps']} steps")
    sft_dir = out / "sft"
    if not (sft_dir / "summary.json").exists():
        train_sft(
            SFTConfig(
                model=f"tiny:{TASK}:1m:sft_steps=0",
                task=TASK,
                train_examples=4000,
                steps=s["sft_steps"],
                batch_size=32,
                learning_rate=3e-3,
                warmup_steps=20,
                lr_schedule="cosine",
                output_dir=str(sft_dir),
                eval_interval=0,
                save_interval=0,
                validation_split=0.02,
            ),
            resume=sft_dir.exists(),
        )
    sft_model = str(sft_dir / "final")

    # 2. preferences from the hidden gold annotator, on the policy's own samples
    say(f"2/5 the gold annotator compares pairs of the policy's samples ({s['comparisons']} prompts)")
    task = get_task(TASK)
    policy, tok = load_model(sft_model)
    rows = task.make_rows(s["comparisons"], seed=11, split="train")
    requests = sample_comparisons(policy, tok, rows, MAX_NEW_TOKENS, 1.0, seed=5, tag="demo-")
    labels = GraderLabeller(task.grader).label(requests, 1)
    if len(labels) < 20:
        raise ReinforgeError(
            f"only {len(labels)} usable comparisons: the SFT policy is not writing reviews yet"
        )
    random.Random(0).shuffle(labels)
    n_val = max(8, len(labels) // 6)
    val_rows, train_rows = labels[:n_val], labels[n_val:]
    from reinforge.data.jsonl import write_jsonl
    from reinforge.data.preferences import pair_rows, to_pairs

    write_jsonl(out / "preferences.jsonl", pair_rows(to_pairs(labels)))

    # 3. reward model
    say(f"3/5 reward model on {len(train_rows)} pairs (held out: {len(val_rows)})")
    rm_dir = out / "rm"
    if not (rm_dir / "summary.json").exists():
        train_reward_model(
            RMConfig(
                model=sft_model,
                backbone="causal_lm",
                epochs=s["rm_epochs"],
                batch_size=32,
                learning_rate=1e-3,
                lr_schedule="linear",
                output_dir=str(rm_dir),
                eval_interval=0,
                save_interval=0,
                max_length=96,
            ),
            train_rows=train_rows,
            val_rows=val_rows,
        )
    rm_summary = json.loads((rm_dir / "summary.json").read_text())

    # 4. PPO against the learned reward (adaptive KL), and a sweep of fixed betas
    kl_target = 4.0

    def ppo(name: str, steps: int, beta: float, target: float | None) -> dict:
        cfg = PPOConfig(
            model=sft_model,
            task=TASK,
            reward_model=rm_summary["reward_model"],
            output_dir=str(out / name),
            prompts_per_step=64,
            num_minibatches=2,
            ppo_epochs=4,
            max_new_tokens=MAX_NEW_TOKENS,
            steps=steps,
            learning_rate=5e-5,
            # a decaying rate lets the KL settle at the target; fixed-beta sweep runs keep theirs
            lr_schedule="linear" if target else "constant",
            beta=beta,
            kl_target=target,
            kl_horizon=128,
            validation_examples=s["val_prompts"],
            eval_samples=4,
            eval_interval=s["eval_every"],
            save_interval=0,
            train_examples=4000,
        )
        summary = train_ppo(cfg)
        evals = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        summary["curve"] = [
            {
                "step": r["step"],
                "kl": r["eval/kl"],
                "gold": r.get("eval/eval_grader_mean"),
                "learned": r["eval/reward_mean"],
            }
            for r in evals
            if r.get("kind") == "eval"
        ]
        return summary

    say(
        f"4/5 PPO on the learned reward, adaptive KL (target {kl_target} nats), then fixed betas {s['sweep_betas']}"
    )
    main_run = ppo("ppo", s["ppo_steps"], 0.05, kl_target)
    sweep = [{"beta": "adaptive", "curve": main_run["curve"]}]
    for beta in s["sweep_betas"]:
        run = ppo(f"sweep-beta-{beta:g}", s["sweep_steps"], beta, None)
        sweep.append({"beta": beta, "curve": run["curve"]})

    # 5. DPO on the same pairs
    say("5/5 DPO on the same pairs")
    dpo = train_dpo(
        DPOConfig(
            model=sft_model,
            task=TASK,
            beta=0.1,
            epochs=s["dpo_epochs"],
            batch_size=32,
            learning_rate=2e-4,
            lr_schedule="linear",
            eval_examples=s["val_prompts"],
            eval_samples=4,
            max_new_tokens=MAX_NEW_TOKENS,
            eval_interval=0,
            save_interval=0,
            output_dir=str(out / "dpo"),
        ),
        train_pairs=to_pairs(train_rows),
        val_pairs=to_pairs(val_rows),
    )

    first, last = main_run["curve"][0], main_run["curve"][-1]
    summary = {
        "rm_val_accuracy": rm_summary["val_accuracy"],
        "gold_reward_before": first["gold"],
        "gold_reward_after_ppo": last["gold"],
        "gold_reward_after_dpo": dpo["final_val_reward"],
        "kl_after_ppo": last["kl"],
        "kl_target": kl_target,
        "kl_after_dpo": dpo["final_kl"],
        "learned_reward_before": first["learned"],
        "learned_reward_after_ppo": last["learned"],
        "preference_pairs": len(labels),
        "dpo_val_accuracy": dpo["val_accuracy"],
        "beta_sweep": sweep,
        "quick": quick,
        "seconds": round(time.time() - t0, 1),
    }
    write_summary(out, summary)
    plot_sweep(out / "beta_sweep.png", sweep)
    print_table(f"demo rlhf ({out})", {k: v for k, v in summary.items() if not isinstance(v, list)})
    return summary


def plot_sweep(path: Path, sweep: list[dict]) -> Path:
    """Gold and learned reward against KL, one line per beta (points in training order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_gold, ax_rm) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for run in sweep:
        pts = [p for p in run["curve"] if p["kl"] is not None and p["gold"] is not None]
        label = f"beta={run['beta']}" if run["beta"] != "adaptive" else "adaptive beta (main run)"
        ax_gold.plot([p["kl"] for p in pts], [p["gold"] for p in pts], "o-", label=label, alpha=0.8)
        ax_rm.plot([p["kl"] for p in pts], [p["learned"] for p in pts], "o-", label=label, alpha=0.8)
    ax_gold.set(
        xlabel="KL(policy || SFT), nats per review", ylabel="gold reward (hidden)", title="what we want"
    )
    ax_rm.set(
        xlabel="KL(policy || SFT), nats per review",
        ylabel="learned reward (standardised)",
        title="what PPO optimises",
    )
    for ax in (ax_gold, ax_rm):
        ax.grid(alpha=0.3)
    ax_gold.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
