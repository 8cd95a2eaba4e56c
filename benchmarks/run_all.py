"""`make bench`: run every benchmark module's ``main()`` that exists, one after another."""

from __future__ import annotations

import importlib
import json

MODULES = ["bench_grpo", "bench_grpo_gpu", "bench_graders", "bench_tune", "bench_serve"]


def main() -> None:
    for name in MODULES:
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("benchmarks."):
                print(json.dumps({"bench": name, "skipped": "module not present"}))
                continue
            raise
        print(f"== {name}", flush=True)
        mod.main([])


if __name__ == "__main__":
    main()
