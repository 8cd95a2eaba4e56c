"""The warm-up that turns a ``tiny:TASK:SIZE`` id into an SFT'd model, and loading by any model id.

Configs name tiny models by id: ``tiny:TASK:SIZE[:sft_steps=N][:seed=N][:train_examples=N]``
(:func:`parse_tiny_id`). A built-in TASK's model is SFT-warmed for 300 steps on 256 of its examples
unless the id says otherwise; ``tiny:blank:SIZE`` is untrained, the base to SFT on a task of your own.
The architecture and tokenizer are :mod:`reinforge.models.tiny`'s; the warm-up needs a task's data
and the SFT loop, hence lives here, above tasks/ and beside train/sft.py.

Code above this layer loads a model by id through :func:`load_model` here (or resolves the id with
:func:`resolve_model` first): ``models.loading`` takes directories and hub ids only.

>>> parse_tiny_id("tiny:addition:4m:seed=3")
{'task': 'addition', 'size': '4m', 'seed': 3}
>>> parse_tiny_id("tiny:blank:1m")
{'task': 'blank', 'size': '1m', 'sft_steps': 0}
>>> parse_tiny_id("runs/sft/final") is None
True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from reinforge.errors import ConfigError
from reinforge.models import loading
from reinforge.models.tiny import CACHE_VERSION, SIZES, build_model, build_tokenizer, cache_root, save_tiny
from reinforge.tasks import get_task, sft_rows, task_names
from reinforge.train.sft import sft_warmup

# ``tiny:TASK:SIZE[:key=N]...``: the keys a tiny id may set (``tiny_model``'s integer arguments)
TINY_OPTIONS = ("sft_steps", "seed", "train_examples")
BLANK = "blank"  # tiny:blank:SIZE: untrained weights and the tiny tokenizer, the base for a task of your own


def tiny_model(
    task: str = "addition",
    size: str = "1m",
    seed: int = 0,
    train_examples: int = 256,
    sft_steps: int = 300,
    cache_dir: Path | None = None,
) -> Path:
    """Build (or fetch from the cache) a tiny model SFT-warmed on a built-in task; returns its directory.

    ``sft_steps=0`` gives the untrained model. The cache key covers every argument, so two calls with the
    same arguments return the same weights.
    """
    key = json.dumps([task, size, seed, train_examples, sft_steps, CACHE_VERSION])
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    root = Path(cache_dir) if cache_dir else cache_root() / "tiny"
    path = root / f"{task}-{size}-s{seed}-n{train_examples}-k{sft_steps}-{digest}"
    if (path / "config.json").exists():
        return path
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    model = build_model(size, seed, len(tokenizer))
    if sft_steps > 0:
        rows = get_task(task).make_rows(train_examples, seed=seed + 1000, split="train")
        sft_warmup(model, tokenizer, sft_rows(rows), steps=sft_steps, seed=seed)
    return save_tiny(model, tokenizer, path)


def tiny_id_usage() -> str:
    """One line naming every valid part of a tiny id (for error messages)."""
    return (
        f"tiny ids are tiny:TASK:SIZE[:{'=N][:'.join(TINY_OPTIONS)}=N] with TASK one of "
        f"{', '.join([BLANK, *task_names()])} ({BLANK} = untrained) and SIZE one of {', '.join(SIZES)}"
    )


def parse_tiny_id(name: str) -> dict | None:
    """``tiny:addition:1m`` or ``tiny:addition:1m:sft_steps=600`` -> kwargs for ``tiny_model``; else None.

    A malformed tiny id raises ``ConfigError`` naming the bad part and every valid one.
    """
    if not name.startswith("tiny:"):
        return None
    parts = name.split(":")[1:]

    def bad(what: str) -> ConfigError:
        return ConfigError(f"model {name!r}: {what}; {tiny_id_usage()}")

    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise bad("give a task and a size")
    task, size = parts[0], parts[1]
    if task != BLANK and task not in task_names():
        raise bad(f"unknown task {task!r}")
    if size not in SIZES:
        raise bad(f"unknown size {size!r}")
    kwargs: dict = {"task": task, "size": size}
    for extra in parts[2:]:
        key, eq, value = extra.partition("=")
        if key not in TINY_OPTIONS or not eq:
            raise bad(f"unknown option {extra!r}")
        if not value.isdigit():
            raise bad(f"option {key}={value!r} must be a whole number >= 0")
        kwargs[key] = int(value)
    if task == BLANK:
        if kwargs.get("sft_steps"):
            raise bad(
                f"{BLANK} has no data to warm up on; drop sft_steps (SFT it on your data with `reinforge sft`)"
            )
        kwargs["sft_steps"] = 0
    return kwargs


def resolve_model(name: str) -> str:
    """A tiny id -> its built (and cached) model directory; any other id or path as it is."""
    tiny = parse_tiny_id(name)
    return str(tiny_model(**tiny)) if tiny is not None else name


def load_model(name: str, dtype: str | None = None, device: str | None = None, trainable: bool = False):
    """:func:`reinforge.models.loading.load_model` for any model id, tiny ids included."""
    return loading.load_model(resolve_model(name), dtype=dtype, device=device, trainable=trainable)
