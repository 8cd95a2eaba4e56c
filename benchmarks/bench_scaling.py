"""Data-parallel scaling on the CPU: ``reinforge rft`` on 1 rank x 1 thread against ``torchrun`` 2 ranks x 1
thread each, at the same global batch (``prompts_per_step`` x ``group_size`` completions a step).

Both sides are the real command on the same config: a random-init tiny Llama (``tiny:addition:SIZE`` without
its warm-up, so both sides sample the same length distribution: equal work in expectation), GRPO with a KL
term, no evaluation or checkpoints between steps. The figure is each side's median ``perf/completions_per_s``
(rank 0's step time, which waits for the gradient all-reduce) over the steps after the first; the sides run in
alternating blocks (1, 2, 1, 2, ...) so that load from other processes hits both alike.
Speedup = completions/s of 2 ranks / of 1 rank; efficiency = speedup / 2. Where the time goes, per side: the
median rollout seconds (``perf/gen_seconds``: sampling and grading) and update seconds (the rest of the step:
log-prob forwards, backward, the all-reduce, AdamW, the log's gathers), each phase's speedup, and the time of
one flat gloo all-reduce of the model's gradient size between 2 forked ranks (``allreduce_s``). On a shared
machine the wall-clock speedup measures the scheduler as much as the code (two processes may get no more CPU
than one); ``cpu_speedup`` (a step's CPU seconds on 1 rank over rank 0's on 2 ranks, ``perf/cpu_seconds``) is
the speedup the code would reach with a free core per rank: the split work plus what the ranks add.
``ceiling_speedup`` is what the machine itself allows: two unconnected 1-rank runs at once, half the prompts
each (the same split, no gradient exchange), their summed completions/s over 1 rank's.

    python -m benchmarks.bench_scaling                       # 11m model, 32 prompts x 8, 16 tokens, 6 steps
    python -m benchmarks.bench_scaling --size 1m --steps 4 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from safetensors.torch import load_file


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


def launch(ranks: int, cfg_path: Path, out: Path) -> subprocess.Popen:
    """The real command on ``ranks`` ranks of 1 thread, started."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "REINFORGE_DIST_BACKEND": "gloo"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "-m"]
    args = [*(launcher if ranks > 1 else [sys.executable, "-m"]), "reinforge", "rft", str(cfg_path)]
    cmd = [*args, "--set", f"output_dir={out}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_side(ranks: int, cfg_path: Path, out: Path) -> dict:
    """One run of the real command on ``ranks`` ranks of 1 thread; its median completions/s."""
    t0 = time.perf_counter()
    return side_figures(launch(ranks, cfg_path, out), out, t0)


def run_ceiling(half_cfg_path: Path, out: Path) -> dict:
    """Two independent 1-rank runs at once, each with half the step's prompts and no communication: what
    the machine gives two processes, the ceiling of any 2-rank speedup here. Their completions/s summed."""
    t0 = time.perf_counter()
    procs = [launch(1, half_cfg_path, out / f"half-{i}") for i in range(2)]
    runs = [side_figures(p, out / f"half-{i}", t0) for i, p in enumerate(procs)]
    return {"completions_per_s": sum(r["completions_per_s"] for r in runs)}


def side_figures(proc: subprocess.Popen, out: Path, t0: float) -> dict:
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{proc.args!r} failed:\n{stdout[-2000:]}{stderr[-2000:]}")
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r.get("kind") == "train"][1:]  # after the warm-up step
    return {
        "completions_per_s": statistics.median(r["perf/completions_per_s"] for r in train),
        "gen_s": statistics.median(r["perf/gen_seconds"] for r in train),
        "update_s": statistics.median(r["perf/step_seconds"] - r["perf/gen_seconds"] for r in train),
        "cpu_s": statistics.median(r["perf/cpu_seconds"] for r in train),
        "wall_s": wall,
    }


def _allreduce_rank(rank: int, port: int, n: int, repeats: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    flat, times = torch.ones(n), []
    for _ in range(repeats):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        times.append(time.perf_counter() - t0)
    if rank == 0:
        out.put(statistics.median(times))
    dist.destroy_process_group()


def allreduce_seconds(n: int, repeats: int = 5) -> float:
    """Median seconds of one all-reduce of ``n`` float32 between 2 forked gloo ranks of 1 thread: what
    ``distributed.average_gradients`` sends once per optimizer step."""
    ctx = mp.get_context("fork")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = ctx.Queue()
    procs = [ctx.Process(target=_allreduce_rank, args=(r, port, n, repeats, out)) for r in range(2)]
    for p in procs:
        p.start()
    seconds = out.get(timeout=300)
    for p in procs:
        p.join()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="11m", help="tiny model size (reinforge/models/tiny.py SIZES)")
    ap.add_argument("--steps", type=int, default=6)
    # 32 x 8 = 256 completions a step, the GPU benchmark's batch: at 64 the 11m model's half-batches are
    # small enough that per-operation overhead caps the speedup (benchmarks/README.md)
    ap.add_argument("--prompts", type=int, default=32, help="prompts a step, over all ranks (even)")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="alternating blocks per side")
    ap.add_argument("--no-ceiling", dest="ceiling", action="store_false", help="skip the ceiling runs")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from reinforge.train.warmup import tiny_model

    model_dir = tiny_model("addition", a.size, seed=0, sft_steps=0)
    sides: dict[int | str, list[dict]] = {1: [], 2: [], "ceiling": []}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        cfg_path, half_path = Path(tmp) / "rft.yaml", Path(tmp) / "half.yaml"
        cfg_path.write_text(yaml.safe_dump(config(model_dir, Path(tmp) / "run", a)))
        half = argparse.Namespace(**{**vars(a), "prompts": a.prompts // 2})
        half_path.write_text(yaml.safe_dump(config(model_dir, Path(tmp) / "run", half)))
        for rep in range(a.repeats):
            for ranks in (1, 2):
                sides[ranks].append(run_side(ranks, cfg_path, Path(tmp) / f"run-{ranks}-{rep}"))
            if a.ceiling:
                sides["ceiling"].append(run_ceiling(half_path, Path(tmp) / f"ceiling-{rep}"))
        n_params = sum(t.numel() for t in load_file(str(Path(model_dir) / "model.safetensors")).values())
        allreduce = allreduce_seconds(n_params)
    med = lambda key, r: statistics.median(s[key] for s in sides[r])  # noqa: E731
    cps = {r: med("completions_per_s", r) for r in sides if sides[r]}
    speedup = cps[2] / cps[1]
    ceiling = {"ceiling_speedup": round(cps["ceiling"] / cps[1], 2)} if "ceiling" in cps else {}
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
                # two unconnected 1-rank processes at once, half the prompts each, over 1 rank alone
                **ceiling,
                "gen_s_1x1": round(med("gen_s", 1), 2),
                "gen_s_2x1": round(med("gen_s", 2), 2),
                "gen_speedup": round(med("gen_s", 1) / med("gen_s", 2), 2),
                "update_s_1x1": round(med("update_s", 1), 2),
                "update_s_2x1": round(med("update_s", 2), 2),
                "update_speedup": round(med("update_s", 1) / med("update_s", 2), 2),
                "allreduce_s": round(allreduce, 3),
                # a step's CPU seconds on 1 rank / on one of 2 ranks: the speedup with a free core per rank
                "cpu_s_1x1": round(med("cpu_s", 1), 2),
                "cpu_s_2x1": round(med("cpu_s", 2), 2),
                "cpu_speedup": round(med("cpu_s", 1) / med("cpu_s", 2), 2),
                "wall_s_1x1": round(med("wall_s", 1), 1),
                "wall_s_2x1": round(med("wall_s", 2), 1),
                "load_avg_1m": round(os.getloadavg()[0], 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
