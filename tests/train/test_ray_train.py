"""Ray Train (train/ray_train.py): ``distributed: {backend: ray, workers: 2}`` trains the same GRPO step on a
local Ray instance with two CPU workers as one process makes on the same batch."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from tests.train.test_distributed import finished, launch, one_process_step, rft_yaml


@pytest.mark.slow
def test_rft_on_two_ray_train_workers(tiny_addition_dir, tmp_path):
    config = rft_yaml(
        tmp_path, tiny_addition_dir, distributed={"backend": "ray", "workers": 2, "use_gpu": False}
    )
    finished(launch(config, 1))
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["steps"] == 1
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1]  # rank 0 alone logs
    two_workers = load_file(str(run / "final" / "model.safetensors"))
    one = one_process_step(config, shards=[0, 1])  # both workers' rows, in one process
    worst = max((two_workers[k] - one[k]).abs().max().item() for k in two_workers)
    assert worst < 1e-5, worst
