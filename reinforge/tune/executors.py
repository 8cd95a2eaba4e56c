"""Executors run evaluations: in this process, in local worker threads/processes, or on Ray.

One interface: ``submit(fn, *args) -> handle`` and ``wait(handles) -> [(handle, ok, result_or_error)]``
(at least one finished). ``run`` is written against it, so a study moves from a laptop to a Ray
cluster by changing ``executor:`` and nothing else.

>>> ex = LocalExecutor(workers=1)
>>> h = ex.submit(pow, 2, 5)
>>> ex.wait([h])[0][1:]
(True, 32)
"""

from __future__ import annotations

import concurrent.futures as cf
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from reinforge.errors import ConfigError, ReinforgeError


def _call(fn: Callable, args: tuple) -> tuple[bool, Any]:
    try:
        return True, fn(*args)
    except Exception as e:
        if isinstance(e, ReinforgeError):
            raise
        return False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"


class Executor(ABC):
    workers = 1

    @abstractmethod
    def submit(self, fn: Callable, *args: Any) -> Any:
        """Start ``fn(*args)``; return a handle."""

    @abstractmethod
    def wait(self, handles: list) -> list[tuple[Any, bool, Any]]:
        """Block until at least one handle is done; return ``(handle, ok, result or error text)`` for each."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release workers; default: nothing to release."""


class LocalExecutor(Executor):
    """``workers`` threads (good for model calls and graders that release the GIL) or processes;
    ``workers=1`` runs in the calling thread, which keeps tracebacks simple."""

    def __init__(self, workers: int = 1, processes: bool = False):
        self.workers = max(1, workers)
        self.pool = None
        if self.workers > 1:
            self.pool = (
                cf.ProcessPoolExecutor(self.workers) if processes else cf.ThreadPoolExecutor(self.workers)
            )

    def submit(self, fn: Callable, *args: Any) -> Any:
        if self.pool is None:
            fut: cf.Future = cf.Future()
            fut.set_result(_call(fn, args))
            return fut
        return self.pool.submit(_call, fn, args)

    def wait(self, handles: list) -> list[tuple[Any, bool, Any]]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return [(h, *h.result()) for h in handles if h in done]

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class RayExecutor(Executor):
    """Evaluations as Ray tasks. ``address="auto"`` joins a running cluster; ``None`` starts a local instance.

    ``resources_per_trial``: what each trial's task reserves, ``{cpu: 4, gpu: 1}`` (YAML ``executor: {type:
    ray, address: auto, resources_per_trial: {cpu: 4, gpu: 1}}``): Ray places a trial only where they are
    free and shows it its GPUs alone (``CUDA_VISIBLE_DEVICES``), so training trials on a cluster see a GPU.
    Default: ``num_cpus`` CPUs and no GPU."""

    def __init__(
        self,
        address: str | None = None,
        workers: int = 2,
        num_cpus: float = 1,
        resources_per_trial: dict[str, float] | None = None,
        **init_kwargs: Any,
    ):
        res = {k.lower(): float(v) for k, v in (resources_per_trial or {}).items()}
        if set(res) - {"cpu", "gpu"} or any(v < 0 for v in res.values()):
            raise ConfigError(
                f"executor.resources_per_trial {resources_per_trial}: give cpu and/or gpu counts >= 0, "
                "e.g. {cpu: 4, gpu: 1}"
            )
        try:
            import ray
        except ImportError:
            raise ConfigError("executor: ray is not installed; pip install 'reinforge[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            if address is None:
                init_kwargs.setdefault("num_cpus", workers)
            ray.init(
                address=address,
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
                **init_kwargs,
            )
        self.workers = workers
        self.remote = ray.remote(num_cpus=res.get("cpu", num_cpus), num_gpus=res.get("gpu", 0))(_call)

    def submit(self, fn: Callable, *args: Any) -> Any:
        return self.remote.remote(fn, args)

    def wait(self, handles: list) -> list[tuple[Any, bool, Any]]:
        done, _ = self.ray.wait(list(handles), num_returns=1)
        return [(h, *self.ray.get(h)) for h in done]


def make_executor(spec: str | dict | Executor | None, workers: int = 1) -> Executor:
    if isinstance(spec, Executor):
        return spec
    opts = {"type": spec} if isinstance(spec, str) or spec is None else dict(spec)
    kind = opts.pop("type", None) or "local"
    opts.setdefault("workers", workers)
    if kind in ("local", "threads"):
        return LocalExecutor(**opts)
    if kind == "processes":
        return LocalExecutor(processes=True, **opts)
    if kind == "ray":
        return RayExecutor(**opts)
    raise ConfigError(f"executor {kind!r}: choose local, processes or ray")
