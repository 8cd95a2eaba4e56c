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
import yaml
from safetensors.torch import load_file

from reinforge.train.grpo import GRPOConfig, train_grpo


def cfg_dict(model_dir, out: Path) -> dict:
    return dict(
        model=str(model_dir),
        task="addition",
        output_dir=str(out),
        steps=6,
        prompts_per_step=4,
        group_size=4,
        max_new_tokens=4,
        learning_rate=1e-3,
        lr_schedule="cosine",
        warmup_steps=2,
        loss_type="dapo",
        beta=0.04,
        eval_interval=3,
        save_interval=3,
        train_examples=64,
        validation_examples=16,
        progress=False,
    )


def figures(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the records' timings (perf/*)."""
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in recs]


def test_two_runs_with_one_seed_are_bit_identical(tiny_addition_dir, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    train_grpo(GRPOConfig(**cfg_dict(tiny_addition_dir, here)))
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg_dict(tiny_addition_dir, there)))
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
