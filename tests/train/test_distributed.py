"""Data parallel (train/distributed.py): the collectives on 2 forked gloo ranks; a 2-rank ``torchrun`` GRPO step
against one process's step on the same batch; a 2-rank run killed and resumed on 1 rank."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from reinforge.config import load_config
from reinforge.errors import ConfigError
from reinforge.train import distributed
from reinforge.train.losses import whiten
from reinforge.train.rollout import Rollout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    os.environ["REINFORGE_DIST_BACKEND"] = "gloo"
    assert distributed.init()
    a = torch.nn.Linear(2, 1, bias=True)
    a.weight.grad = torch.full_like(a.weight, float(rank + 1))  # rank 0: 1, rank 1: 2 -> mean 1.5
    a.bias.grad = None  # no gradient on either rank: counts as zero
    distributed.average_gradients(a.parameters())
    ragged = torch.ones(rank + 1, rank + 2)  # rank 0: (1, 2), rank 1: (2, 3)
    adv = torch.tensor([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0]]) + 4 * rank  # rank 1's rows: 5..8
    adv_mask = torch.tensor([[1, 1, 0], [1, 1, 0]])  # the 9s are padding
    blocks: list[list[int]] = []

    def tenfold(xs: list[int]) -> torch.Tensor:  # (n, 1); records the block this rank computed
        blocks.append(xs)
        return torch.tensor(xs, dtype=torch.float32).reshape(-1, 1) * 10

    out.put(
        (
            rank,
            {
                "grad": a.weight.grad.tolist(),
                "bias": a.bias.grad.tolist(),
                "shard": distributed.shard_range(6),
                "mean": distributed.mean_across(rank * 4.0),
                "any": distributed.any_across(rank == 1),
                "objects": distributed.gather_objects([f"r{rank}"]),
                "rows": distributed.gather_rows(ragged, pad=-1).tolist(),
                "block": distributed.rows(list(range(10, 16))),
                "share": distributed.share(1.0 + 2 * rank),  # tokens 1 and 3: shares 0.5, 1.5
                "fields": distributed.mean_fields({"loss": rank * 2.0, "acc": 1.0 - rank}),
                "white": distributed.whiten_across(adv, adv_mask),
                "split": distributed.split_work(tenfold, [1, 2, 3, 4, 5]).reshape(-1).tolist(),
                "blocks": blocks,
            },
        )
    )
    distributed.barrier()
    torch.distributed.destroy_process_group()


def test_collectives_on_two_gloo_ranks():
    ctx = mp.get_context("fork")
    out, port = ctx.Queue(), free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for r in range(2):
        assert got[r]["grad"] == [[1.5, 1.5]]  # the mean of the ranks' gradients
        assert got[r]["bias"] == [0.0]
        assert got[r]["mean"] == 2.0 and got[r]["any"] is True  # agreed on every rank
        assert got[r]["objects"] == ["r0", "r1"]  # in rank order
        assert got[r]["rows"] == [[1, 1, -1], [1, 1, 1], [1, 1, 1]]  # rank 0's row padded to 3
    assert got[0]["shard"] == (0, 3) and got[1]["shard"] == (3, 6)  # whole groups, in blocks
    assert got[0]["block"] == [10, 11, 12] and got[1]["block"] == [13, 14, 15]  # a step's rows, in blocks
    assert (got[0]["share"], got[1]["share"]) == (0.5, 1.5)
    assert got[0]["fields"] == got[1]["fields"] == {"loss": 1.0, "acc": 0.5}
    assert got[0]["split"] == got[1]["split"] == [10, 20, 30, 40, 50]  # every row, in order, on each rank
    assert got[0]["blocks"] == [[1, 2]] and got[1]["blocks"] == [[3, 4, 5]]  # each computed its block only
    # whitened over both ranks' 8 real entries, as one process whitens them all at once
    whole = whiten(torch.arange(1.0, 9.0), None)
    white = torch.cat([got[r]["white"][:, :2].reshape(-1) for r in range(2)])
    assert torch.allclose(white.sort().values, whole, atol=1e-6)


def test_single_process_is_the_identity():
    t = torch.ones(2, 3)
    assert distributed.world_size() == 1 and distributed.rank() == 0 and not distributed.init()
    assert distributed.gather_rows(t) is t and distributed.gather_objects([1]) == [1]
    assert distributed.shard_range(5) == (0, 5)


@pytest.mark.parametrize(
    "n, shard, expected",
    [
        (8, (0, 2), (0, 4)),  # the first half
        (8, (1, 2), (4, 8)),  # the second half
        (8, (3, 4), (6, 8)),  # the last quarter
        (1, (0, 1), (0, 1)),  # one process: everything
    ],
)
def test_shard_range(n, shard, expected):
    assert distributed.shard_range(n, shard) == expected


def test_prompts_not_a_multiple_of_the_world_size_is_refused():
    with pytest.raises(ConfigError) as e:
        distributed.shard_range(6, (0, 4))
    msg = str(e.value)
    assert "prompts_per_step=6" in msg and "world size 4" in msg and "--set prompts_per_step=4" in msg


# ------------------------------------------------------------------------- torchrun, end to end


def rft_yaml(tmp_path: Path, model_dir, **kw) -> Path:
    cfg = dict(
        model=str(model_dir),
        task="addition",
        output_dir=str(tmp_path / "run"),
        steps=1,
        prompts_per_step=4,
        group_size=4,
        max_new_tokens=4,
        learning_rate=1e-3,
        beta=0.04,
        eval_interval=0,
        save_interval=1,
        keep_checkpoints=10,
        train_examples=32,
        validation_examples=4,
        audit=False,
        progress=False,
    )
    cfg.update(kw)
    path = tmp_path / "rft.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def launch(config: Path, nproc: int, *extra: str, command: str = "rft") -> subprocess.Popen:
    """``torchrun --nproc-per-node N -m reinforge rft CONFIG`` (``python -m reinforge`` for 1)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REINFORGE_DIST_BACKEND": "gloo"}
    if nproc == 1:
        args = [sys.executable, "-m", "reinforge", command, str(config), *extra]
    else:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
        args = [*torchrun, "--master-port", str(free_port()), "-m", "reinforge", command, str(config), *extra]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def finished(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def concat(rolls: list[Rollout], pad_id: int) -> Rollout:
    """One rollout of several ranks' (in rank order): prompts re-left-padded, completions re-right-padded."""
    T = max(r.n_completion for r in rolls)
    P = max(r.input_ids.shape[1] - r.n_completion for r in rolls)

    def repad(t: torch.Tensor, n_comp: int, pad) -> torch.Tensor:
        prompt, comp = t[:, : t.shape[1] - n_comp], t[:, t.shape[1] - n_comp :]
        return torch.cat(
            [
                torch.nn.functional.pad(prompt, (P - prompt.shape[1], 0), value=pad),
                torch.nn.functional.pad(comp, (0, T - comp.shape[1]), value=pad),
            ],
            dim=1,
        )

    def right(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, T - t.shape[1]))

    return Rollout(
        torch.cat([repad(r.input_ids, r.n_completion, pad_id) for r in rolls]),
        torch.cat([repad(r.attention_mask, r.n_completion, 0) for r in rolls]),
        torch.cat([right(r.completion_mask) for r in rolls]),
        torch.cat([right(r.sample_logps) for r in rolls]),
        torch.cat([r.rewards for r in rolls]),
        [g for r in rolls for g in r.grades],
        [t for r in rolls for t in r.texts],
        0.0,
        0.0,
    )


def one_process_step(config: Path, shards: list[int]) -> dict[str, torch.Tensor]:
    """GRPO step 1 in this process on the batch the ranks in ``shards`` (of 2) sampled, as one batch."""
    from reinforge.models.vllm_backend import make_backend
    from reinforge.train.batching import load_prompt_rows
    from reinforge.train.grpo import GRPOConfig, build_policy, grpo_update, load_grader
    from reinforge.train.optimizer import adamw
    from reinforge.train.rollout import StepRollouts
    from reinforge.train.schedule import make_scheduler

    cfg = load_config(GRPOConfig, config, [])
    train_rows, _ = load_prompt_rows(cfg)
    torch.manual_seed(cfg.seed)
    policy, ref, tok = build_policy(cfg)
    optim = adamw(policy.parameters(), cfg.learning_rate, cfg.weight_decay)
    make_scheduler(optim, cfg.warmup_steps, 1, cfg.lr_schedule)
    backend = make_backend(cfg.generation_backend, policy, tok)
    rollouts = StepRollouts(backend, load_grader(cfg), train_rows, tok, cfg)
    batch = concat([rollouts(1, cfg.group_size, shard=(r, 2)) for r in shards], backend.pad_id)
    grpo_update(policy, ref, optim, batch, cfg, step_seed=cfg.seed * 7919 + 1)
    return {k: v.detach() for k, v in policy.state_dict().items()}


@pytest.mark.slow
def test_two_ranks_make_the_one_process_update(tiny_addition_dir, tmp_path):
    config = rft_yaml(tmp_path, tiny_addition_dir)
    finished(launch(config, 2))
    two_ranks = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    one = one_process_step(config, shards=[0, 1])  # the same 16 completions, one process
    start = load_file(str(Path(tiny_addition_dir) / "model.safetensors"))
    moved = max((two_ranks[k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-4  # the step changed the weights
    worst = max((two_ranks[k] - one[k]).abs().max().item() for k in two_ranks)
    assert worst < 1e-5, worst  # same update, to float tolerance
    half = one_process_step(config, shards=[0])  # rank 0's rows alone: not the same update
    assert max((two_ranks[k] - half[k]).abs().max().item() for k in two_ranks) > 1e-4
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["kind"] == "train"]
    assert len(train) == 1  # rank 0 alone logs ...
    assert train[0]["perf/completions_per_s"] > 0 and "reward/mean" in train[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["status"] == "succeeded"


@pytest.mark.slow
def test_two_rank_run_killed_resumes_on_one_rank(tiny_addition_dir, tmp_path):
    config = rft_yaml(tmp_path, tiny_addition_dir, steps=4, validation_examples=2)
    run = tmp_path / "run"
    proc = launch(config, 2)
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / "step-2").exists():  # polled between waits on the process
        assert time.monotonic() < deadline, "no step-2 checkpoint"
        with pytest.raises(subprocess.TimeoutExpired):  # the run must not end before it is killed
            proc.wait(timeout=0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
    proc.wait()
    assert not (run / "summary.json").exists(), "the run finished before it was killed"
    finished(launch(config, 1, "--resume"))
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2, 3, 4]  # none lost or repeated
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["status"] == "succeeded"


def sft_on_1_and_2_ranks(tmp_path: Path, rows: int = 16, **kw) -> tuple[dict, dict]:
    """One SFT step on a micro model, on 1 process and on 2 ranks: ({nproc: final weights}, {nproc: records})."""
    from tests.helpers import chat_rows, micro_model, write_jsonl

    model = micro_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(rows))
    weights, records = {}, {}
    for nproc in (1, 2):
        cfg = dict(model=str(model), train_file=str(data), output_dir=str(tmp_path / f"run{nproc}"), steps=1,
                   batch_size=8, learning_rate=1e-2, max_length=64, eval_interval=0, save_interval=0,
                   progress=False, device="cpu", **kw)  # fmt: skip
        (tmp_path / "sft.yaml").write_text(yaml.safe_dump(cfg))
        finished(launch(tmp_path / "sft.yaml", nproc, command="sft"))
        weights[nproc] = load_file(str(tmp_path / f"run{nproc}" / "final" / "model.safetensors"))
        lines = (tmp_path / f"run{nproc}" / "metrics.jsonl").read_text().splitlines()
        records[nproc] = [json.loads(x) for x in lines]
    return weights, records


@pytest.mark.slow
def test_two_rank_sft_step_is_the_one_process_step(tmp_path):
    weights, records = sft_on_1_and_2_ranks(tmp_path)
    losses = {n: [r["loss/sft"] for r in recs if r["kind"] == "train"] for n, recs in records.items()}
    worst = max((weights[2][k] - weights[1][k]).abs().max().item() for k in weights[1])
    assert worst < 1e-5, worst  # 2 ranks of 4 rows: the update of 1 process with the 8 rows
    assert losses[2] == pytest.approx(losses[1], rel=1e-5)  # the loss over all 8 rows, logged once
    odd = launch(
        tmp_path / "sft.yaml",
        2,
        "--set",
        "batch_size=7",
        "--set",
        f"output_dir={tmp_path / 'odd'}",
        command="sft",
    )
    said = odd.communicate(timeout=600)[0]  # the rows are split across the ranks: 7 do not split in 2
    assert odd.returncode != 0 and "batch_size=7: must be a multiple of the world size 2" in said, said
