"""Data parallel on ``torch.distributed``, set up once by the run skeleton (:class:`~reinforge.train.skeleton.Run`).

Every rank runs the same trainer loop on the same weights; a step's prompts are split across ranks in
whole groups (:func:`shard_range`), so a group's advantages never need another rank's rewards; the
gradients are averaged (:func:`average_gradients`) before clipping, so N ranks with B/N prompts each
make the update one process makes with B (to float tolerance; with ``num_minibatches: 1``, the
default: more minibatches are drawn from each rank's own rows). Rank 0 logs, evaluates and writes
checkpoints; a checkpoint holds the one model and optimizer every rank shares, and the data position
is a function of the step alone, so ``--resume`` works at any world size.

Every trainer is wired the same way (rft, sft, rm, dpo, ppo): :func:`rows` takes this rank's block of the
step's rows, a loss that is a mean over tokens is weighted by the rank's :func:`share` of them, one
:func:`optimizer_step` backpropagates, averages, clips and steps, and :func:`mean_fields` /
:func:`gather_rows` make the logged figures the whole batch's. PPO whitens its advantages over every
rank's tokens (:func:`whiten_across`).

Started by ``torchrun --nproc-per-node N -m reinforge rft CONFIG.yaml`` (its ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``/``MASTER_ADDR`` variables): gloo on CPU, NCCL on CUDA with one GPU per local rank. Under Ray
Train the process group already exists and is used as it is. Without either, every function here is the
single-process identity (``world_size() == 1``), at no cost.

>>> world_size(), rank(), shard_range(8)
(1, 0, (0, 8))
>>> mean_across(3.0), any_across(False), share(5), rows([4, 7])
(3.0, False, 1.0, [4, 7])
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from reinforge.config import Config
from reinforge.errors import ConfigError
from reinforge.train.fsdp import clip_gradients
from reinforge.train.losses import whiten


class DistributedSettings(Config):
    """A trainer's ``distributed`` section: who starts the ranks. Under ``torchrun`` nothing need be set."""

    backend: Literal["torchrun", "ray"] = "torchrun"  # ray: Ray Train's TorchTrainer starts the workers
    workers: int = 2  # ray: training processes (ranks)
    use_gpu: bool = False  # ray: one GPU per worker (NCCL), else CPU workers (gloo)
    cpus_per_worker: float = 1  # ray: CPUs each worker reserves
    address: str | None = None  # ray: a cluster's address ("auto": the one this machine joined); null: local
    # FSDP2 (train/fsdp.py): each decoder layer's weights, gradients and AdamW state sharded over the
    # ranks (rft, sft); false: every rank holds the whole model (data parallel)
    fsdp: bool = False


def init() -> bool:
    """Join the process group torchrun describes (once per process); True when running distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = torch.cuda.is_available() and os.environ.get("REINFORGE_DIST_BACKEND", "") != "gloo"
    if cuda:  # one GPU per local rank: "cuda" (cfg.device auto) then means this rank's GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def _device() -> torch.device:
    """Where collectives' tensors live: this rank's GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard_range(
    n_groups: int, shard: tuple[int, int] | None = None, what: str = "prompts_per_step"
) -> tuple[int, int]:
    """``[lo, hi)``: this rank's contiguous block of a step's ``n_groups`` prompt groups (a group is never
    split). ``shard``: ``(rank, world_size)`` to use instead of this process's."""
    r, W = shard or (rank(), world_size())
    if n_groups % W:
        raise ConfigError(
            f"{what}={n_groups}: must be a multiple of the world size {W} (each rank samples whole groups "
            f"of an equal share); set --set {what}={max(W, n_groups // W * W)} or run on fewer processes"
        )
    per = n_groups // W
    return r * per, (r + 1) * per


def rows(idx, what: str = "batch_size"):
    """This rank's contiguous block of a step's rows ``idx`` (indices, a list or a 1-D tensor), whose
    length must be a multiple of the world size (:func:`shard_range`; ``what`` names the knob)."""
    lo, hi = shard_range(len(idx), what=what)
    return idx[lo:hi]


def share(n: float) -> float:
    """This rank's ``n`` (tokens, rows) over the ranks' mean ``n``: a rank's mean loss times its share,
    gradients then averaged (:func:`average_gradients`), is the mean over every rank's ``n`` at once.
    One process: exactly 1.0."""
    return n / max(1e-9, mean_across(n))


def optimizer_step(optimizer, loss: torch.Tensor, params, max_grad_norm: float) -> float:
    """One data-parallel update: ``loss.backward()``, gradients averaged over the ranks, then clipped
    to ``max_grad_norm`` and applied. Returns the gradient norm before clipping (the same on every rank).
    ``loss``: this rank's share of the global batch's loss (its mean over equal blocks, or weighted by
    :func:`share`), so N ranks with B/N rows each make one process's update with B."""
    params = [p for p in params if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params)
    gn = clip_gradients(params, max_grad_norm)
    optimizer.step()
    return gn


def average_gradients(params) -> None:
    """Replace each parameter's gradient by its mean over the ranks (one flat all-reduce). A parameter
    without a gradient on this rank counts as zero, so every rank sends the same buffer. FSDP-sharded
    parameters are left alone: their backward already averaged them (train/fsdp.py)."""
    if not active():
        return
    params = [p for p in params if p.requires_grad and not isinstance(p, DTensor)]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params]).to(_device())
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def broadcast_parameters(model) -> None:
    """Start every rank from rank 0's weights (a seed that differs, a model built differently)."""
    if not active():
        return
    for t in [*model.parameters(), *model.buffers()]:
        buf = t.data.to(_device())
        dist.broadcast(buf, src=0)
        t.data.copy_(buf)


def mean_across(x: float) -> float:
    """The mean of a number over the ranks."""
    if not active():
        return x
    t = torch.tensor([float(x)], dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.item() / world_size()


def mean_fields(rec: dict[str, float]) -> dict[str, float]:
    """Each figure's mean over the ranks, in one all-reduce (a step's logged losses and accuracies: exact
    for means over equal blocks of rows)."""
    if not active():
        return rec
    t = torch.tensor([float(v) for v in rec.values()], dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return dict(zip(rec, (t / world_size()).tolist()))


def whiten_across(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """:func:`~reinforge.train.losses.whiten` over the masked entries of every rank's ``x`` (any shape,
    the same on each rank but dim 0), so a rank's advantages are normalised as one process's would be."""
    if not active():
        return whiten(x, mask, eps=eps)
    m = mask.to(x.dtype)
    n, total = _sum_across(torch.stack([m.sum(), (x * m).sum()])).tolist()
    mean = total / max(n, 1.0)
    var = _sum_across(((x - mean) * m).pow(2).sum().reshape(1)).item() / max(n - 1, 1.0)  # unbiased
    return (x - mean) * torch.rsqrt(torch.tensor(var + eps, dtype=x.dtype, device=x.device))


def _sum_across(t: torch.Tensor) -> torch.Tensor:
    out = t.detach().to(_device(), torch.float64)
    dist.all_reduce(out)
    return out.to(t.device)


def any_across(flag: bool) -> bool:
    """True on every rank when it is true on any (a stop signal every rank must obey together)."""
    if not active():
        return flag
    t = torch.tensor([int(flag)], device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(items: list) -> list:
    """Every rank's list, concatenated in rank order (picklable items: grades, texts)."""
    if not active():
        return items
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, items)
    return [x for part in out for x in part]


def gather_rows(t: torch.Tensor, pad: float = 0) -> torch.Tensor:
    """Every rank's (n, ...) tensor concatenated along dim 0 in rank order; a ragged last dim is
    right-padded with ``pad`` to the longest."""
    if not active():
        return t
    parts = gather_objects([t.cpu()])
    width = max(p.shape[-1] for p in parts) if t.dim() > 1 else None
    if width is not None:
        parts = [torch.nn.functional.pad(p, (0, width - p.shape[-1]), value=pad) for p in parts]
    return torch.cat(parts).to(t.device)


def split_work(fn, items: list) -> torch.Tensor:
    """``fn(items)``'s (n, ...) rows computed once across the ranks: each rank runs ``fn`` on its
    contiguous block of ``items`` (blocks differ by at most one), and every rank gets all rows in order
    (DPO's reference log-probs, computed once before training)."""
    if not active():
        return fn(items)
    W, r = world_size(), rank()
    lo, hi = len(items) * r // W, len(items) * (r + 1) // W
    return gather_rows(fn(items[lo:hi]))


def for_logging(roll):
    """The step's rollout as it is logged: rewards, grades, texts and completion masks of every rank
    (the tensors the update used stay this rank's)."""
    if not active():
        return roll
    from dataclasses import replace

    return replace(
        roll,
        rewards=gather_rows(roll.rewards),
        grades=gather_objects(roll.grades),
        texts=gather_objects(roll.texts),
        completion_mask=gather_rows(roll.completion_mask),
    )


def barrier() -> None:
    if active():
        dist.barrier()
