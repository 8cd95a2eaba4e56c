"""FSDP2 (``torch.distributed.fsdp.fully_shard``): ``distributed: {fsdp: true}`` under torchrun (rft, sft).

The decoder layers are sharded: a rank holds 1/N of their weights, gradients and AdamW moments. Each
module of a layer that holds weights (a projection, a norm) is one unit whose forward all-gathers it and
whose backward reduce-scatters its gradients (averaged over the ranks); units that small because the
packed log-prob forward (``models/packed.py``) calls a layer's parts, not the layer.
The rest (embeddings, final norm, LM head; tied in the tiny models) stays replicated and is all-reduced
like data parallel (``distributed.average_gradients``), so a trainer's forwards that reach past the root
module (the log-prob forwards call the decoder body and the LM head directly) need no change.

Written once, called by the skeleton (``Run``) and the rollout: :func:`full_weights` gathers every layer
for a stretch of work that not every rank does alike (rank 0's evaluation, a rollout whose lengths differ
by rank: decoding then runs no collective), :func:`full_state` gathers the weights and the optimizer for a
checkpoint (every rank calls it, rank 0 writes), :func:`load_optimizer` restores one whichever way it was
saved. One process (or ``fsdp: false``): every function is the identity.

>>> import torch
>>> m = torch.nn.Linear(2, 2)
>>> shard(m), sharded(m), full_state(m, torch.optim.SGD(m.parameters(), lr=0.1))
(False, False, (None, None))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor


def _leaves(model) -> list[torch.nn.Module]:
    """The modules that hold weights of the decoder layers (every module of a ``ModuleList``, one per
    transformer block): projections and norms, each called as a module by every forward path."""
    layers = [m for lst in model.modules() if isinstance(lst, torch.nn.ModuleList) for m in lst]
    return [m for layer in layers for m in layer.modules() if any(True for _ in m.parameters(recurse=False))]


def shard(model) -> bool:
    """Shard ``model``'s decoder layers over the process group (in place), each weight-holding module one
    unit; False when not distributed."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    from torch.distributed.fsdp import fully_shard

    for leaf in _leaves(model):
        fully_shard(leaf)
    return True


def _units(model) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def sharded(model) -> bool:
    return bool(_units(model))


@contextmanager
def full_weights(model) -> Iterator[None]:
    """Every rank holds the whole model inside: one all-gather per layer on entry (every rank must
    enter), then forwards run no collective, so ranks may generate different lengths or rank 0 alone
    may evaluate; the layers are sharded again on exit."""
    units = _units(model)
    for u in units:
        u.unshard()
        u.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for u in units:
            u.set_reshard_after_forward(True, recurse=False)
            u.reshard()


def full_state(model, optimizer=None) -> tuple[dict | None, dict | None]:
    """(model weights, ``optimizer``'s state or None) of a sharded model gathered whole to rank 0 (None
    elsewhere and when not sharded: then the model and optimizer save themselves). The optimizer's state
    is keyed by parameter name. Every rank must call it."""
    if not sharded(model):
        return None, None
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(model, options=opts)
    optim = get_optimizer_state_dict(model, optimizer, options=opts) if optimizer is not None else None
    return (weights, optim) if dist.get_rank() == 0 else (None, None)


def load_optimizer(model, optimizer, state: dict) -> None:
    """Restore a saved optimizer state, whole (index- or name-keyed), into a sharded or plain model's
    optimizer: a checkpoint resumes with or without FSDP, at any world size."""
    by_name = any(isinstance(k, str) for k in state["state"])
    if not by_name and not sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if not by_name:  # a plain optimizer's state: parameter i of its groups is the same parameter now
        names = {id(p): n for n, p in model.named_parameters()}
        order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
        state = {
            "state": {order[i]: s for i, s in state["state"].items()},
            "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in state["param_groups"]],
        }
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def clip_gradients(params, max_norm: float) -> float:
    """``clip_grad_norm_`` over parameters some of which are sharded (the norm of the whole gradient:
    shards' squares summed over the ranks, replicated ones counted once). Returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not any(isinstance(g, DTensor) for g in grads):
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    local = [g.to_local() if isinstance(g, DTensor) else g for g in grads]
    sq_sharded = sum((g.float().pow(2).sum() for g, d in zip(local, grads) if isinstance(d, DTensor)), 0.0)
    sq = torch.as_tensor(sq_sharded, dtype=torch.float32, device=local[0].device)
    dist.all_reduce(sq)
    sq = sq + sum((g.float().pow(2).sum() for g, d in zip(local, grads) if not isinstance(d, DTensor)), 0.0)
    total = sq.sqrt()
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in local:
        g.mul_(coef.to(g.dtype))
    return float(total)
