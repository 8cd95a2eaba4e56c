"""A pool of long-lived sandbox processes that run python graders; the host never dies.

Each worker (``sandbox_worker.py``) runs inside bubblewrap's namespaces (see
:mod:`reinforge.graders.sandbox_bwrap`: only the Python runtime, read-only; a private tmpfs as its
temp dir; no network, no other processes, no capabilities), with a clean environment, its own
session and — when started as root — the ``nobody`` user; rlimits cap memory, file size and
processes; an audit hook refuses sockets, process creation, signals, ctypes and writes outside the
temp dir. Where bwrap cannot run, the worker runs with the other layers only, if
:func:`~reinforge.graders.sandbox_bwrap.unsandboxed_policy` allows it. The host enforces the wall
time: a row that overruns is charged a timeout, its worker is killed (with its whole process
group) and restarted, and the remaining rows go on. Rows stream back one line each, so a batch of
thousands costs one write and one pipe read per row.

>>> pool = SandboxPool(workers=1)
>>> pool.run("def grade(sample, item):\\n    return len(sample['output_text'])\\n", [({"output_text": "abc"}, {})])
[(3.0, None)]
>>> pool.close()
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from reinforge.graders.sandbox_bwrap import (
    SANDBOX_TMP,
    WORKER_IN_SANDBOX,
    WORKER_SCRIPT,
    bwrap_argv,
    bwrap_problem,
    unsandboxed_error,
    warn_unsandboxed,
)

MAX_SOURCE_BYTES = 256 * 1024
START_TIMEOUT_S = 30.0
GRACE_S = 1.0  # host-side slack on top of the worker's own alarm before it kills the worker

Result = tuple[float | None, str | None]  # (reward, None) or (None, error details)


@dataclass(frozen=True)
class SandboxLimits:
    """Per-row limits. Defaults follow OpenAI's python grader (2 GB memory, 1 GB disk)."""

    timeout_s: float = 10.0  # wall time per row (load of the source gets the same)
    cpu_s: float = 10.0  # CPU seconds per row
    memory_mb: int = 2048  # address space of the worker
    disk_mb: int = 1024  # largest file the grader may write (in its temp dir)
    max_processes: int = 64  # RLIMIT_NPROC for the sandbox user (fork is refused anyway)
    max_abs_reward: float = 1e6  # a reward outside +-this is an error


def clean_env(tmpdir: str) -> dict[str, str]:
    """The worker's whole environment: no host variables, so no host secrets."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": tmpdir,
        "TMPDIR": tmpdir,
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _readable(fd: int, timeout: float) -> bool:
    """True when ``fd`` has data (or EOF) within ``timeout`` seconds."""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    return bool(ready)


class Spawner:
    """Starts processes from one long-lived thread of this process.

    bwrap's ``--die-with-parent`` (``PR_SET_PDEATHSIG``) fires when the *thread* that started it
    ends, so a worker started by a grading thread (or a server's thread pool) would die with it.
    """

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():  # first use, or a forked child
                self.thread = threading.Thread(
                    target=self._loop, name="reinforge-sandbox-spawner", daemon=True
                )
                self.thread.start()
        done: Future = Future()
        self.requests.put((argv, kwargs, done))
        return done.result()

    def _loop(self) -> None:
        while True:
            argv, kwargs, done = self.requests.get()
            try:
                done.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as e:  # noqa: B036 - handed to the caller
                done.set_exception(e)


SPAWNER = Spawner()


class Worker:
    """One sandbox process plus its pipes; ``loaded`` is the source it currently holds."""

    def __init__(self, limits: SandboxLimits, audit_hook: bool = True):
        self.limits = limits
        self.audit_hook = audit_hook
        self.proc: subprocess.Popen | None = None
        self.tmpdir: str | None = None  # the host-side temp dir (unsandboxed workers only)
        self.loaded: str | None = None
        self.layers: dict[str, bool] = {}
        self.buf = b""

    def command(self) -> tuple[list[str], str]:
        """The worker's argv and its temp dir (as the worker sees it); raises when policy refuses."""
        limits = json.dumps(asdict(self.limits))
        flags = "" if self.audit_hook else "no-audit-hook"
        if bwrap_problem() is None:
            argv = bwrap_argv(sys.executable, self.limits.disk_mb)
            return [*argv, "-I", "-B", WORKER_IN_SANDBOX, SANDBOX_TMP, limits, f"bwrap,{flags}"], SANDBOX_TMP
        refused = unsandboxed_error()
        if refused:
            raise RuntimeError(refused)
        if not self.audit_hook:  # hostile code with neither the OS sandbox nor the hook could harm the host
            raise RuntimeError(
                f"the audit hook may be turned off only inside the OS sandbox ({bwrap_problem()})"
            )
        warn_unsandboxed()
        self.tmpdir = tempfile.mkdtemp(prefix="reinforge-sandbox-")
        return [sys.executable, "-I", "-B", str(WORKER_SCRIPT), self.tmpdir, limits, ""], self.tmpdir

    def start(self) -> None:
        argv, tmpdir = self.command()
        self.proc = SPAWNER.popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=clean_env(tmpdir),
            cwd=self.tmpdir,  # None in the OS sandbox: bwrap sets the worker's cwd
            start_new_session=True,
            close_fds=True,
        )
        self.buf = b""
        self.loaded = None
        hello = self.read_line(time.monotonic() + START_TIMEOUT_S)
        if hello is None:
            self.kill()
            raise RuntimeError("the sandbox worker did not start")
        self.layers = json.loads(hello)["hello"]

    def kill(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and anything it spawned
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass
            self.proc = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        self.loaded = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, obj: dict) -> bool:
        assert self.proc is not None and self.proc.stdin is not None, "send() before start()"
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def read_line(self, deadline: float) -> str | None:
        """The next line, or None on EOF or when ``deadline`` (monotonic) passes."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None, "read_line() before start()"
        fd = proc.stdout.fileno()
        while b"\n" not in self.buf:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None
            if not _readable(fd, wait):
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # EOF: the worker died; reap it so death_reason can tell why
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def pending(self) -> bool:
        """True when the worker wrote more than it was asked for (checked after a shard)."""
        if self.buf:
            return True
        assert self.proc is not None and self.proc.stdout is not None, "pending() before start()"
        return _readable(self.proc.stdout.fileno(), 0)

    def death_reason(self) -> str:
        code = self.proc.poll() if self.proc else None
        if code is not None and code > 128 and self.layers.get("os_sandbox"):
            code = 128 - code  # bwrap exits 128 + the signal that killed the worker
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = {"SIGKILL": " (memory or process limit)", "SIGXCPU": " (CPU time limit)"}.get(name, "")
            return f"the sandbox process died from {name}{hint}"
        return f"the sandbox process exited (code {code})"


class SandboxPool:
    """``workers`` sandbox processes shared by every python grader with the same limits."""

    def __init__(
        self, workers: int | None = None, limits: SandboxLimits | None = None, audit_hook: bool = True
    ):
        self.limits = limits or SandboxLimits()
        self.n = max(1, workers or os.cpu_count() or 1)
        # audit_hook=False: tests show that the OS layers alone contain hostile code
        self.workers = [Worker(self.limits, audit_hook) for _ in range(self.n)]
        self.lock = threading.Lock()

    def info(self) -> dict[str, bool]:
        """Which sandbox layers the OS granted (started workers only)."""
        return next((w.layers for w in self.workers if w.layers), {})

    def _ensure(self, w: Worker, source: str) -> str | None:
        """Start ``w`` and load ``source``; return error details if the source does not load."""
        if not w.alive():
            w.kill()
            w.start()
        if w.loaded == source:
            return None
        w.send({"op": "load", "source": source})
        line = w.read_line(time.monotonic() + self.limits.timeout_s + GRACE_S)
        if line is None:
            reason = "loading the grader source timed out" if w.alive() else w.death_reason()
            w.kill()
            return reason
        reply = json.loads(line)
        if not reply.get("ok"):
            w.loaded = None
            return f"loading the grader source failed: {reply.get('e')}"
        w.loaded = source
        return None

    def run(self, source: str, rows: list[tuple[Any, Any]]) -> list[Result]:
        """Grade ``rows`` of ``(sample, item)``; one ``(reward, error)`` per row, in order."""
        if not rows:
            return []
        results: list[Result | None] = [None] * len(rows)
        with self.lock:
            n = min(self.n, max(1, len(rows) // 16))  # small batches are not worth the fan-out
            bounds = [(len(rows) * k // n, len(rows) * (k + 1) // n) for k in range(n)]
            threads = [
                threading.Thread(
                    target=self._run_shard, args=(self.workers[k], source, rows, lo, hi, results)
                )
                for k, (lo, hi) in enumerate(bounds)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return [r if r is not None else (None, "internal: row not graded") for r in results]

    def _run_shard(self, w: Worker, source: str, rows: list, lo: int, hi: int, results: list) -> None:
        """Grade rows[lo:hi] on ``w``, restarting it after a timeout or crash, and go on."""
        i = lo
        while i < hi:
            try:
                err = self._ensure(w, source)
            except Exception as e:  # the worker cannot even start: a server error, not the grader's
                for j in range(i, hi):
                    results[j] = (None, f"server: {type(e).__name__}: {e}")
                return
            if err is not None:
                for j in range(i, hi):
                    results[j] = (None, err)
                return
            if not w.send({"op": "grade", "rows": [list(r) for r in rows[i:hi]]}):
                results[i] = (None, w.death_reason())
                w.kill()
                i += 1
                continue
            while i < hi:
                line = w.read_line(time.monotonic() + self.limits.timeout_s + GRACE_S)
                if line is None:  # overran the host's clock, or died
                    results[i] = (None, "wall time limit exceeded" if w.alive() else w.death_reason())
                    w.kill()
                    i += 1
                    break
                try:
                    out = json.loads(line)
                    results[i] = (float(out["r"]), None) if "r" in out else (None, str(out["e"]))
                except (ValueError, KeyError, TypeError):
                    results[i] = (None, "the grader corrupted the sandbox protocol")
                    w.kill()
                    i += 1
                    break
                i += 1
        if w.alive() and w.pending():  # lines beyond one per row: forged by the grader, never read later
            w.kill()

    def close(self) -> None:
        for w in self.workers:
            w.kill()


_POOLS: dict[tuple[int, SandboxLimits], SandboxPool] = {}
_POOLS_LOCK = threading.Lock()


def get_pool(workers: int | None = None, limits: SandboxLimits | None = None) -> SandboxPool:
    """The process-wide pool for these settings (created on first use, reused afterwards)."""
    limits = limits or SandboxLimits()
    key = (max(1, workers or os.cpu_count() or 1), limits)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = SandboxPool(key[0], limits)
        return pool


@atexit.register
def shutdown() -> None:
    """Stop every sandbox process of this host process."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()
