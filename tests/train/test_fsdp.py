"""FSDP2 (train/fsdp.py, ``distributed: {fsdp: true}``): where it is refused; the helpers on 2 forked gloo
ranks; 2 ``torchrun`` ranks with sharded layers make one process's rft and sft update; a sharded run resumes
from its checkpoint (on 2 ranks, and on 1 process) to the weights of the run that was never stopped."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reinforge.errors import ConfigError
from reinforge.train import fsdp
from reinforge.train.grpo import GRPOConfig
from reinforge.train.skeleton import check_fsdp
from tests.train.test_distributed import (
    finished,
    free_port,
    launch,
    one_process_step,
    rft_yaml,
    sft_on_1_and_2_ranks,
)


def worst_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize(
    "algorithm, extra, said",
    [
        ("dpo", {}, "supported by rft and sft, not dpo"),  # rm, dpo, ppo: not wired
        ("grpo", {"lora": {"r": 4}}, "with lora"),  # adapters: nothing worth sharding
    ],
)
def test_fsdp_refused_where_not_wired(algorithm, extra, said):
    cfg = GRPOConfig(task="addition", distributed={"fsdp": True}, **extra)
    with pytest.raises(ConfigError, match=said) as e:
        check_fsdp(cfg, algorithm)
    assert "--set distributed.fsdp=false" in str(e.value)  # the fix
    check_fsdp(GRPOConfig(task="addition", **extra), algorithm)  # without fsdp: accepted


def _rank_main(rank: int, port: int, model_dir: str, saved: str, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    os.environ["REINFORGE_DIST_BACKEND"] = "gloo"
    from transformers import AutoModelForCausalLM

    from reinforge.train import distributed
    from reinforge.train.optimizer import adamw

    assert distributed.init()
    plain = AutoModelForCausalLM.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert fsdp.shard(model) and fsdp.sharded(model) and not fsdp.sharded(plain)
    ids = torch.arange(12).reshape(2, 6) % 20
    norms = []
    for m in (plain, model):  # the same batch on both ranks: the same gradient
        m(input_ids=ids, labels=ids).loss.backward()
        distributed.average_gradients(m.parameters())
        norms.append(fsdp.clip_gradients(list(m.parameters()), 0.01))
    optim = adamw(model.parameters(), 1e-2)
    optim.step()
    weights, state = fsdp.full_state(model, optim)
    with fsdp.full_weights(model):  # rank 1 runs two forwards, rank 0 one: no collective inside
        for _ in range(rank + 1):
            model(input_ids=ids)
        whole = all(not isinstance(p, torch.distributed.tensor.DTensor) for p in model.parameters())
    if rank == 0:  # tensors go through a file: a queue's shared memory ends with the process
        torch.save((weights, state), saved)
    out.put((rank, norms, whole, weights is None and state is None))


def test_helpers_on_two_gloo_ranks(tmp_path):
    from tests.helpers import micro_model

    model_dir = str(micro_model(tmp_path / "m"))
    ctx = mp.get_context("fork")
    out, port, saved = ctx.Queue(), free_port(), str(tmp_path / "state.pt")
    procs = [ctx.Process(target=_rank_main, args=(r, port, model_dir, saved, out)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict((r, rest) for r, *rest in (out.get(timeout=300) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for r in (0, 1):
        plain_norm, sharded_norm = got[r][0]
        assert sharded_norm == pytest.approx(plain_norm, rel=1e-5)  # the whole gradient's norm
        assert got[r][1]  # inside full_weights every layer is whole
    assert got[1][2] and not got[0][2]  # gathered to rank 0 only
    weights, state = torch.load(saved, weights_only=False)
    start = load_file(str(Path(model_dir) / "model.safetensors"))
    assert set(start) <= set(weights) and all(weights[k].shape == start[k].shape for k in start)
    assert worst_diff(start, weights) > 1e-4  # the step moved the whole weights
    assert all(isinstance(k, str) for k in state["state"])  # keyed by parameter name


# ------------------------------------------------------------------------- torchrun, end to end


@pytest.mark.slow
def test_fsdp_rft_step_is_the_one_process_step(tiny_addition_dir, tmp_path):
    config = rft_yaml(tmp_path, tiny_addition_dir, distributed={"fsdp": True})
    finished(launch(config, 2))  # evaluates (rank 0, layers gathered), samples, updates, checkpoints
    two_ranks = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    one = one_process_step(config, shards=[0, 1])  # the same 16 completions, one process
    start = load_file(str(Path(tiny_addition_dir) / "model.safetensors"))
    assert worst_diff(start, two_ranks) > 1e-4  # the step changed the weights
    assert worst_diff(two_ranks, one) < 1e-5  # same update, to float tolerance
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in recs] == ["eval", "train", "eval"]  # logged once
    assert 0 < recs[1]["perf/cpu_seconds"]  # rank 0's CPU time of the step (bench_scaling's cpu_speedup)


@pytest.mark.slow
def test_fsdp_sft_step_is_the_one_process_step(tmp_path):
    weights, records = sft_on_1_and_2_ranks(
        tmp_path, rows=20, validation_split=0.2, distributed={"fsdp": True}
    )
    losses = {n: [r.get("loss/sft", r.get("eval/loss")) for r in recs] for n, recs in records.items()}
    assert worst_diff(weights[2], weights[1]) < 1e-5
    assert losses[2] == pytest.approx(losses[1], rel=1e-5) and len(losses[1]) == 3  # eval, train, eval


@pytest.mark.slow
def test_fsdp_run_resumes_from_its_checkpoint(tiny_addition_dir, tmp_path):
    config = rft_yaml(tmp_path, tiny_addition_dir, steps=2, distributed={"fsdp": True})
    run = tmp_path / "run"
    finished(launch(config, 2))
    whole = load_file(str(run / "final" / "model.safetensors"))  # the run never stopped
    saved = torch.load(run / "checkpoints" / "step-1" / "optimizer.pt", weights_only=False)
    assert all(isinstance(k, str) for k in saved["optimizer"]["state"])  # the whole state, by name
    for nproc in (2, 1):  # as if killed after step 1: resumed sharded, then on one process
        shutil.rmtree(run / "checkpoints" / "step-2")
        shutil.rmtree(run / "final")
        (run / "summary.json").unlink()
        finished(launch(config, nproc, "--resume"))
        resumed = load_file(str(run / "final" / "model.safetensors"))
        if nproc == 2:  # step 2 needs step 1's AdamW moments (a fresh optimizer moves each weight by ~lr)
            assert worst_diff(whole, resumed) < 1e-6
        else:  # one process samples step 2 with its own seed: another batch, another update
            step1 = load_file(str(run / "checkpoints" / "step-1" / "model.safetensors"))
            assert worst_diff(step1, resumed) > 1e-4
        recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2]
