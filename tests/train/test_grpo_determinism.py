"""Two RFT runs with the same seed on one machine are bit-identical: every logged figure (timings aside) and
every final weight, though the second run is another process with another hash seed, so an unseeded RNG
(python's, numpy's, torch's global one), set or dict ordering of strings, or a decision taken by the clock
would show here (benchmarks/README.md, "Is a long RFT run bit-identical?")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from reinforge.train.grpo import train_grpo
from tests.train.test_grpo import small_cfg


def figures(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the records' timings (perf/*)."""
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in recs]


def test_two_runs_with_one_seed_are_bit_identical(tiny_addition_dir, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    kw = dict(lr_schedule="cosine", warmup_steps=2, loss_type="dapo", eval_interval=3, save_interval=3)
    train_grpo(small_cfg(tiny_addition_dir, here, **kw))
    small_cfg(tiny_addition_dir, there, **kw).save(tmp_path / "cfg.yaml")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    subprocess.run(
        [sys.executable, "-m", "reinforge", "rft", str(tmp_path / "cfg.yaml")],
        env=env,
        check=True,
        timeout=600,
    )
    a, b = figures(here), figures(there)
    assert len(a) == len(b) == 6 + 3  # 6 steps, evaluations at 0, 3 and 6
    for ra, rb in zip(a, b):
        assert ra == rb, ra["step"]
    wa = load_file(str(here / "final" / "model.safetensors"))
    wb = load_file(str(there / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
