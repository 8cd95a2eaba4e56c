"""Precision and memory, set up once by the run skeleton for every trainer.

``precision: bf16`` keeps the weights and AdamW's state in fp32 (the master copy: a small update is
added to an fp32 weight, so it does not round away as it does on a bf16 weight) and runs the update's
forward and backward under ``torch.autocast(dtype=bfloat16)`` (matmuls in bf16, reductions and the loss
in fp32). It is meant for CUDA; on the CPU it runs the same way (CPU autocast), which is how the tests
check it. ``precision: fp32`` is fp32 throughout. ``precision: auto`` leaves the ``dtype`` key in charge:
weights in that dtype (bf16 on a GPU by default: half the memory, but updates below a weight's bf16 step
are lost), no autocast. Sampling runs in the weights' dtype (fp32 under ``bf16``; vLLM loads its own bf16
copy).

``gradient_checkpointing: true`` keeps only each decoder layer's input in the forward and recomputes
the layer in the backward: activation memory per layer drops to one hidden state, for about a third
more compute. It covers the model's own forward (``transformers``) and the packed forward
(``models/packed.py``).

>>> check_precision({"precision": "bf16"}, has_dtype=True)["dtype"]
'float32'
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]


def check_precision(data: dict[str, Any], has_dtype: bool) -> dict[str, Any]:
    """A config's raw keys with ``dtype`` derived from ``precision`` (fp32 weights under bf16 and fp32);
    a ``dtype: bfloat16`` beside them is refused (the master weights must be fp32)."""
    precision = data.get("precision", "auto")
    if precision == "auto" or not has_dtype:
        return data
    dtype = data.get("dtype", "auto")
    if dtype not in ("auto", "float32"):
        raise ValueError(
            f"precision={precision} with dtype={dtype}: precision keeps fp32 master weights and computes in "
            "bf16 itself; drop dtype (or set precision: auto to train bf16 weights)"
        )
    return {**data, "dtype": "float32"}


def autocast(precision: str, model) -> contextlib.AbstractContextManager:
    """The context a trainer's forward and backward run in: bf16 autocast on the model's device under
    ``precision: bf16``, else nothing."""
    if precision != "bf16":
        return contextlib.nullcontext()
    device = next(model.parameters()).device
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def enable_gradient_checkpointing(model) -> None:
    """Recompute each decoder layer in the backward (non-reentrant: frozen embeddings and LoRA work)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
