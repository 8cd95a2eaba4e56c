"""The optimizer every trainer uses: AdamW, on the fused kernel where torch has one for the device.

The fused kernel (CPU and CUDA) updates all parameters in one vectorised pass instead of about ten
tensor ops per parameter tensor; the update rule is the same, in a fraction of the time
(benchmarks/README.md, "Measurement notes").
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor


def adamw(params, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999)):
    """AdamW over the trainable ``params``; falls back to the per-tensor loop where fused is unsupported."""
    params = [p for p in params if p.requires_grad]
    if len({isinstance(p, DTensor) for p in params}) > 1:  # FSDP's shards beside replicated weights
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, foreach=False)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype the fused kernel does not cover
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
