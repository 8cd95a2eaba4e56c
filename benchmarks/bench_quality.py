"""Validation reward against training seconds: reinforge's GRPO vs TRL's GRPOTrainer at equal wall-clock budget.

Both sides start from the same SFT'd tiny model (``make demo``'s small SFT model: the 1m Llama after 600
SFT steps on 200 labelled sums, copied to one local directory both load), train on the same 2,000 addition
prompts with the same grader (the task's digit reward) and the same GRPO settings, each for the same number
of training seconds, one after the other in one process with the same torch threads.

Settings on both sides (the demo's RFT stage): 16 prompts x 8 completions per step, at most 5 new tokens,
temperature 1, top-p 1, no top-k; lr 3e-4 after a linear warm-up of 20 steps, then constant (a decay over
the run's steps would differ between sides that run different step counts in the same time); AdamW
(betas 0.9/0.999, no weight decay), gradient norm clipped to 1; one pass per batch, clip 0.2; beta 0 (no
reference model); token-level loss (``dapo`` on both); advantages scaled by the group's std; fp32; no
activation checkpointing (TRL's default turns it on). Differences left: the data order (each side's own
seeded shuffle of the same rows), the sampler's random stream, and the warm-up's first step (HF's schedule
starts at lr 0, reinforge's at lr/20).

Every ``--eval-every`` training seconds each side's weights are copied (the copy's time is not counted); after
both have trained, one evaluator (reinforge's greedy ``evaluate`` on 200 held-out prompts) scores every copy,
so evaluation is identical for both sides and outside the budget. Model loading and trainer set-up are
outside the budget too; the clock starts at each side's first step.

    python -m benchmarks.bench_quality                  # 120 s each, weights copied every 6 s
    python -m benchmarks.bench_quality --seconds 240 --eval-every 12   # on a loaded machine
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

GROUP, PROMPTS, NEW_TOKENS, LR, WARMUP, SEED = 8, 16, 5, 3e-4, 20, 0
DEMO_SFT = "demo-sft"  # --model's default: make demo's small SFT model (demo_sft_model)
TRAIN_ROWS, VAL_ROWS = 2000, 200


class Clock:
    """Training seconds of one side: wall time since :meth:`start`, less the time spent copying weights.
    ``tick(model)`` after each step copies the weights every ``every`` seconds and says when the budget is
    spent (the step that crosses it is the last)."""

    def __init__(self, budget: float, every: float):
        self.budget, self.every = budget, every
        self.snapshots: list[tuple[float, int, dict]] = []  # (training seconds, step, weights)
        self.steps = 0

    def start(self, model) -> None:
        self.snapshots.append((0.0, 0, _copy(model)))
        self.paused, self.t0 = 0.0, time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def tick(self, model) -> bool:
        self.steps += 1
        t = self.seconds()
        done = t >= self.budget
        if done or t >= self.every * len(self.snapshots):
            t_copy = time.perf_counter()
            self.snapshots.append((t, self.steps, _copy(model)))
            self.paused += time.perf_counter() - t_copy
        return done


def _copy(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def demo_sft_model() -> Path:
    """The start of both sides: ``make demo``'s small SFT model (the 1m model after 600 SFT steps on the
    demo's 200 labelled sums, seed 0; validation reward ~0.83), built once and cached like tiny models."""
    from reinforge.models.tiny import build_model, build_tokenizer, cache_root, save_tiny
    from reinforge.tasks import get_task, sft_rows
    from reinforge.train.sft import sft_warmup

    path = cache_root() / "tiny" / "bench-quality-demo-sft-1m-n200-k600"
    if not (path / "config.json").exists():
        tok = build_tokenizer()
        model = build_model("1m", SEED, len(tok))
        labelled = get_task("addition").make_rows(200, seed=SEED + 1, split="train")  # the demo's labels
        sft_warmup(model, tok, sft_rows(labelled), steps=600, seed=SEED)
        save_tiny(model, tok, path)
    return path


def run_reinforge(model_dir: Path, rows: list[dict], grader, clock: Clock, out: Path, seed: int) -> dict:
    """reinforge's GRPO steps as ``train_grpo`` runs them (rollout, grade, ``grpo_update``, AdamW), timed."""
    from reinforge.models.vllm_backend import make_backend
    from reinforge.train.grpo import GRPOConfig, build_policy, grpo_update
    from reinforge.train.optimizer import adamw
    from reinforge.train.rollout import StepRollouts
    from reinforge.train.schedule import make_scheduler

    cfg = GRPOConfig(
        model=str(model_dir),
        task="addition",
        output_dir=str(out),
        group_size=GROUP,
        prompts_per_step=PROMPTS,
        max_new_tokens=NEW_TOKENS,
        learning_rate=LR,
        warmup_steps=WARMUP,
        lr_schedule="constant",
        beta=0.0,
        loss_type="dapo",
        temperature=1.0,
        dtype="float32",
        seed=seed,
        progress=False,
    )
    torch.manual_seed(cfg.seed)
    policy, ref, tok = build_policy(cfg)
    optimizer = adamw(
        policy.parameters(), cfg.learning_rate, cfg.weight_decay
    )  # as Run.optimizer builds them
    scheduler = make_scheduler(optimizer, cfg.warmup_steps, 10**6, cfg.lr_schedule)
    backend = make_backend(cfg.generation_backend, policy, tok, cfg.compile_decode)
    rollouts = StepRollouts(backend, grader, rows, tok, cfg)
    clock.start(policy)
    step, done = 0, False
    while not done:
        step += 1
        roll = rollouts(step, n=cfg.group_size)
        grpo_update(policy, ref, optimizer, roll, cfg, step_seed=cfg.seed * 7919 + step)
        scheduler.step()
        done = clock.tick(policy)
    return {"threads": torch.get_num_threads()}


def run_trl(model_dir: Path, rows: list[dict], grader, clock: Clock, out: Path, seed: int) -> dict:
    """TRL's GRPOTrainer on the same model, rows, grader and settings; stopped by the clock."""
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from reinforge.graders.base import make_sample
    from reinforge.train.rollout import grade_safely

    warnings.filterwarnings("ignore", "`.*checkpointing.*` is deprecated", FutureWarning)  # TRL's own calls
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)

    def reward(completions, answer, **kw):  # conversational prompts: each completion is [assistant message]
        pairs = [({"answer": a}, make_sample(c[0]["content"])) for c, a in zip(completions, answer)]
        return [g.reward for g in grade_safely(grader, pairs)]

    info: dict = {}

    class Timed(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock.start(model)

        def on_step_end(self, args, state, control, **kw):
            info["checkpointing"] = bool(getattr(model, "is_activation_checkpointing", False))
            if clock.tick(model):
                control.should_training_stop = True

    args = GRPOConfig(
        output_dir=str(out),
        max_steps=10**6,  # the clock stops it
        per_device_train_batch_size=GROUP * PROMPTS,
        num_generations=GROUP,
        max_completion_length=NEW_TOKENS,
        learning_rate=LR,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=WARMUP,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.999,
        max_grad_norm=1.0,
        num_iterations=1,
        epsilon=0.2,
        beta=0.0,
        loss_type="dapo",
        scale_rewards="group",
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        seed=seed,
        logging_steps=10**6,
        report_to=[],
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        gradient_checkpointing=False,  # TRL's default is True; reinforge recomputes nothing on this model
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    ds = Dataset.from_list([{"prompt": r["messages"], "answer": r["answer"]} for r in rows])
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=ds,
        processing_class=tok,
        callbacks=[Timed()],
    )
    trainer.train()
    return {"threads": torch.get_num_threads(), "trl": trl.__version__, **info}


def evaluate_snapshots(model_dir: Path, snapshots: list[tuple[float, int, dict]], val_rows, grader) -> list:
    """[(training seconds, step, greedy validation reward)] for each weight copy, by one evaluator."""
    from reinforge.models.generation import HFBackend
    from reinforge.train.evaluate import evaluate
    from reinforge.train.warmup import load_model

    model, tok = load_model(str(model_dir), dtype="float32")
    backend = HFBackend(model, tok)
    curve = []
    for t, step, weights in snapshots:
        model.load_state_dict(weights)
        res = evaluate(backend, tok, grader, val_rows, NEW_TOKENS, k=1)
        curve.append((round(t, 2), step, round(res["reward_mean"], 4)))
    return curve


def seconds_to_reach(curve: list, target: float) -> float | None:
    """Training seconds of the first evaluation at or above ``target`` (None if never)."""
    return next((t for t, _, r in curve if r >= target - 1e-9), None)


def plot(curves: dict[str, list], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # against training seconds (the comparison), and against steps (learning per step, apart from speed)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name, curve in curves.items():
        for ax, x in zip(axes, (0, 1)):
            ax.plot([c[x] for c in curve], [c[2] for c in curve], marker="o", ms=3, label=name)
    axes[0].set_xlabel("training seconds (evaluation excluded)")
    axes[1].set_xlabel("GRPO steps")
    axes[0].set_ylabel("validation reward (greedy)")
    fig.suptitle(title, fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


SIDES: dict[str, Callable[..., dict]] = {"reinforge": run_reinforge, "trl": run_trl}


def bench(
    model: str, seconds: float, every: float, order: list[str], out_dir: Path, val_n: int, seed: int = SEED
) -> dict:
    from reinforge.tasks import get_task
    from reinforge.train.warmup import resolve_model

    task = get_task("addition")
    rows = task.make_rows(TRAIN_ROWS, seed=SEED, split="train")
    val_rows = task.make_rows(val_n, seed=SEED, split="validation")
    load = {"loadavg_1m_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"  # one local copy of the SFT'd weights that both sides load
        shutil.copytree(demo_sft_model() if model == DEMO_SFT else resolve_model(model), model_dir)
        clocks, info = {}, {}
        for side in order:
            clocks[side] = Clock(seconds, every)
            info[side] = SIDES[side](model_dir, rows, task.grader, clocks[side], Path(tmp) / side, seed)
        load["loadavg_1m_after_training"] = round(os.getloadavg()[0], 2)
        curves = {s: evaluate_snapshots(model_dir, clocks[s].snapshots, val_rows, task.grader) for s in order}
    trl_final = curves["trl"][-1][2] if "trl" in curves else None
    res: dict = {"bench": "quality", "seconds": seconds}
    for s in sorted(order):  # reinforge_val_reward, then trl_val_reward
        res[f"{s}_val_reward"] = curves[s][-1][2]
    res["start_val_reward"] = curves[order[0]][0][2]
    if trl_final is not None:
        for s in order:
            res[f"{s}_seconds_to_trl_final"] = seconds_to_reach(curves[s], trl_final)
        trl_best = max(r for _, _, r in curves["trl"])  # TRL's final can sit below its own best
        for s in order:
            res[f"{s}_seconds_to_trl_best"] = seconds_to_reach(curves[s], trl_best)
    for s in order:
        res[f"{s}_steps"] = clocks[s].steps
        res[f"{s}_train_seconds"] = curves[s][-1][0]
    res["threads"] = {s: info[s]["threads"] for s in order}
    res["trl_version"] = info.get("trl", {}).get("trl")
    res["trl_activation_checkpointing"] = info.get("trl", {}).get("checkpointing")
    res.update(load)
    res["validation_prompts"], res["seed"] = len(val_rows), seed
    res["curves"] = curves
    png = out_dir / "quality.png"
    threads = ", ".join(f"{s} {n}" for s, n in res["threads"].items())
    before, after = load["loadavg_1m_before"], load["loadavg_1m_after_training"]
    plot(
        curves, png, f"{seconds:g} training seconds each; torch threads: {threads}; load {before} -> {after}"
    )
    res["plot"] = str(png)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="training seconds per side")
    ap.add_argument("--eval-every", type=float, default=6.0, help="training seconds between weight copies")
    ap.add_argument(
        "--model",
        default=DEMO_SFT,
        help=f"the SFT'd start: {DEMO_SFT} (make demo's), a tiny id or a local dir",
    )
    ap.add_argument("--order", default="trl,reinforge", help="sides, run one after the other in this order")
    ap.add_argument("--validation", type=int, default=VAL_ROWS, help="held-out prompts evaluated")
    ap.add_argument(
        "--seed", type=int, default=SEED, help="both sides' training seed (data order, sampling); same start"
    )
    ap.add_argument("--out", default="runs/bench-quality", help="directory of the plot and result.json")
    args = ap.parse_args(argv)
    order = args.order.split(",")
    if "trl" in order:
        try:
            import trl  # noqa: F401
        except ImportError:
            res = {"bench": "quality", "skipped": "trl not installed (pip install trl==1.16.0)"}
            print(json.dumps(res))
            return res
    out = Path(args.out)
    res = bench(args.model, args.seconds, args.eval_every, order, out, args.validation, args.seed)
    (out / "result.json").write_text(json.dumps(res, indent=1))
    head = {k: v for k, v in res.items() if k != "curves"}
    print(json.dumps(head), flush=True)
    for s, curve in res["curves"].items():
        print(f"{s}: " + " ".join(f"{t:g}s={r:.3f}" for t, _, r in curve), flush=True)
    return res


if __name__ == "__main__":
    main()
