"""Ray Train (train/ray_train.py): ``distributed: {backend: ray, workers: 2}`` trains the same GRPO step on a
local Ray instance with two CPU workers as one process makes on the same batch."""

from __future__ import annotations

import json
import subprocess
import sys

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


@pytest.mark.slow
def test_ray_workers_read_relative_paths_and_report_a_user_error_in_one_line(tmp_path):
    (tmp_path / "train.jsonl").write_text("not json\n")  # relative to the caller's directory
    (tmp_path / "rft.yaml").write_text(
        "task: addition\ntrain_file: train.jsonl\noutput_dir: run\nsteps: 1\naudit: false\n"
        "distributed: {backend: ray, workers: 2}\n"
    )
    args = [sys.executable, "-m", "reinforge", "rft", "rft.yaml"]
    out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stderr[-3000:]
    # the workers found the file (Ray starts them in a directory of its own) and its error is one line
    said = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert said == ["error: train.jsonl:1: invalid JSON (Expecting value at column 1)"], out.stderr[-3000:]
