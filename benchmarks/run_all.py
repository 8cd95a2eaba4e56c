"""`make bench`: run every benchmark module that exists, one after another, each in its own interpreter.

A fresh process per benchmark keeps one from disturbing the next: peak RSS is per benchmark, and the
worker pools that ``torch.compile`` leaves behind in ``bench_grpo`` (its ``compile_decode`` side) never
meet the forked workers of ``bench_tune`` (in one process, ``make bench`` stalled there).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

MODULES = [
    "bench_grpo",
    "bench_grpo_gpu",
    "bench_quality",
    "bench_agent",
    "bench_graders",
    "bench_tune",
    "bench_serve",
    "bench_scaling",
]


def main() -> int:
    failed = []
    for name in MODULES:
        if importlib.util.find_spec(f"benchmarks.{name}") is None:
            print(json.dumps({"bench": name, "skipped": "module not present"}), flush=True)
            continue
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"]).returncode != 0:
            failed.append(name)
    if failed:
        print(json.dumps({"bench": "all", "failed": failed}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
