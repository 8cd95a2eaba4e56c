"""The GPU benchmark's code runs end to end (``--smoke``: a tiny Qwen2 on the CPU), every side of it, so a
session lent a GPU for a few minutes does not lose them to a crash in the script."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import bench_grpo_gpu
from reinforge.train import logprobs


def test_gpu_bench_smoke_runs_every_side(capsys):
    sides = [*bench_grpo_gpu.REINFORGE_SIDES, "trl"]
    res = bench_grpo_gpu.main(["--smoke", "--steps", "2", "--sides", ",".join(sides)])
    assert [r["side"] for r in res] == sides
    for r in res:
        assert "error" not in r, r
        assert r["completions_per_s"] > 0 and len(r["step_s_all"]) == 2
    for r in res[:-1]:  # each reinforge side ran the fast decoder, without falling back
        assert r["errors"] == [] and r["decoder"] == "static_cache"
    heads = {r["side"]: r["lm_head_logits"] for r in res[:-1]}
    assert heads == {"reinforge": "recomputed", "reinforge_no_graphs": "recomputed",
                     "reinforge_packed": "recomputed", "reinforge_keep_logits": "kept"}  # fmt: skip
    assert logprobs.RECOMPUTE_MIN_VOCAB == 4096  # the side put it back
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"bench"')]
    assert lines[-1]["ratio_reinforge_over_trl"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA it would run the full benchmark")
def test_gpu_bench_without_cuda_skips_unless_smoke(capsys):
    assert bench_grpo_gpu.main(["--steps", "1"]) == []
    assert json.loads(capsys.readouterr().out)["skipped"] == "no CUDA device"
