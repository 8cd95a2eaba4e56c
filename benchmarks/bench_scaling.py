"""Data-parallel scaling on the CPU: ``reinforge rft`` on 1 rank x 1 thread against ``torchrun`` 2 ranks x 1
thread each, at the same global batch (``prompts_per_step`` x ``group_size`` completions a step).

Both sides are the real command on the same config: a random-init tiny Llama (``tiny:addition:SIZE`` without
its warm-up, so both sides sample the same length distribution: equal work in expectation), GRPO with a KL
term, no evaluation or checkpoints between steps. The figure is each side's median ``perf/completions_per_s``
(rank 0's step time, which waits for the gradient all-reduce) over the steps after the first; the sides run in
alternating blocks (1, 2, 1, 2, ...) so that load from other processes hits both alike.
Speedup = completions/s of 2 ranks / of 1 rank; efficiency = speedup / 2.

    python -m benchmarks.bench_scaling                       # 11m model, 8 prompts x 8, 16 tokens, 6 steps
    python -m benchmarks.bench_scaling --size 1m --steps 4 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def config(model_dir: Path, out: Path, a: argparse.Namespace) -> dict:
    return dict(
        model=str(model_dir),
        task="addition",
        output_dir=str(out),
        steps=a.steps,
        prompts_per_step=a.prompts,
        group_size=a.group,
        max_new_tokens=a.tokens,
        learning_rate=1e-5,
        beta=0.04,
        train_examples=256,
        validation_examples=1,
        eval_interval=0,
        save_interval=0,
        audit=False,
        progress=False,
        device="cpu",
    )


def run_side(ranks: int, cfg_path: Path, out: Path) -> dict:
    """One run of the real command on ``ranks`` ranks of 1 thread; its median completions/s."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "REINFORGE_DIST_BACKEND": "gloo"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "-m"]
    args = [*(launcher if ranks > 1 else [sys.executable, "-m"]), "reinforge", "rft", str(cfg_path)]
    t0 = time.perf_counter()
    proc = subprocess.run([*args, "--set", f"output_dir={out}"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{ranks} rank(s) failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    cps = [r["perf/completions_per_s"] for r in recs if r.get("kind") == "train"][1:]  # after the warm-up
    return {"completions_per_s": statistics.median(cps), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="11m", help="tiny model size (reinforge/models/tiny.py SIZES)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=8, help="prompts a step, over all ranks (even)")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="alternating blocks per side")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from reinforge.train.warmup import tiny_model

    model_dir = tiny_model("addition", a.size, seed=0, sft_steps=0)
    sides: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        cfg_path = Path(tmp) / "rft.yaml"
        cfg_path.write_text(yaml.safe_dump(config(model_dir, Path(tmp) / "run", a)))
        for rep in range(a.repeats):
            for ranks in (1, 2):
                sides[ranks].append(run_side(ranks, cfg_path, Path(tmp) / f"run-{ranks}-{rep}"))
    cps = {r: statistics.median(s["completions_per_s"] for s in runs) for r, runs in sides.items()}
    speedup = cps[2] / cps[1]
    print(
        json.dumps(
            {
                "bench": "scaling",
                "size": a.size,
                "completions_per_step": a.prompts * a.group,
                "new_tokens": a.tokens,
                "steps": a.steps,
                "completions_per_s_1x1": round(cps[1], 1),
                "completions_per_s_2x1": round(cps[2], 1),
                "speedup": round(speedup, 2),
                "efficiency": round(speedup / 2, 2),
                "wall_s_1x1": round(statistics.median(s["wall_s"] for s in sides[1]), 1),
                "wall_s_2x1": round(statistics.median(s["wall_s"] for s in sides[2]), 1),
                "load_avg_1m": round(os.getloadavg()[0], 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
