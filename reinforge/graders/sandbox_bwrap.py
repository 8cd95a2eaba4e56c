"""The OS sandbox around python-grader workers: bubblewrap (``bwrap``) namespaces.

Each worker runs inside a new mount namespace that holds only the Python runtime (``sys.base_prefix``,
the venv at ``sys.prefix`` and the system's shared libraries), read-only, plus a private, size-limited
tmpfs at ``/tmp``; a new PID namespace (``/proc`` shows only the sandbox), network namespace (only a
loopback of its own), IPC and UTS namespaces; no capabilities; killed with its parent. Run as root,
bwrap keeps CAP_SETUID/CAP_SETGID only until the worker has become ``nobody`` (then it holds none),
so the kernel also enforces the process limit; run as another user, the worker gets a user namespace
and keeps that user's id. The rlimits and the audit hook of ``sandbox_worker.py`` stay as further layers.

Where bwrap cannot run, :func:`unsandboxed_policy` decides: ``warn`` (the CLI: run with the other
layers and say so once), ``refuse`` (``reinforge serve``) or ``allow`` (``serve
--allow-unsandboxed-python-graders``). The policy lives in the environment so that serve's job
worker processes inherit it.

>>> argv = bwrap_argv("/usr/bin/python3", 64)
>>> argv[0], "--unshare-net" in argv, argv[argv.index("--tmpfs") - 1]
('bwrap', True, '1777')
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

POLICY_ENV = "REINFORGE_UNSANDBOXED_PYTHON_GRADERS"
POLICIES = ("warn", "refuse", "allow")
WORKER_SCRIPT = Path(__file__).with_name("sandbox_worker.py")
WORKER_IN_SANDBOX = "/run/reinforge/sandbox_worker.py"
SANDBOX_TMP = "/tmp"
_warned = False


def set_unsandboxed_policy(policy: str) -> None:
    """What python graders do where bwrap cannot run, for this process and the processes it starts."""
    if policy not in POLICIES:
        raise ValueError(f"unsandboxed policy {policy!r}; use one of {', '.join(POLICIES)}")
    os.environ[POLICY_ENV] = policy


def unsandboxed_policy() -> str:
    policy = os.environ.get(POLICY_ENV, "warn")
    return policy if policy in POLICIES else "refuse"


def _runtime_dirs() -> list[str]:
    """The directories the worker needs, outermost first, without ones nested in another."""
    exe = os.path.dirname(os.path.realpath(sys.executable))
    dirs = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, exe)}
    dirs |= {d for d in ("/usr/lib", "/usr/lib64", "/usr/lib32") if os.path.isdir(d)}
    out: list[str] = []
    for d in sorted(dirs):
        if not any(d == o or d.startswith(o + os.sep) for o in out):
            out.append(d)
    return out


def bwrap_argv(python: str, disk_mb: int, worker: str | Path = WORKER_SCRIPT) -> list[str]:
    """The bwrap command line that starts ``python`` in the sandbox (the worker's own argv follows)."""
    argv = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if os.geteuid() == 0:  # no user namespace: the worker drops to nobody itself, then holds no capability
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:  # unprivileged: a user namespace, and no further ones inside
        argv += ["--unshare-user", "--disable-userns"]
    # every directory above a mount point, traversable by nobody (bwrap would make them 0700)
    above = {str(p) for d in [*_runtime_dirs(), WORKER_IN_SANDBOX] for p in Path(d).parents} - {"/"}
    for d in sorted(above):
        argv += ["--perms", "0755", "--dir", d]
    for d in _runtime_dirs():
        argv += ["--ro-bind", d, d]
    for link in ("/lib", "/lib64", "/lib32"):  # merged-/usr systems: links into /usr
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    argv += ["--ro-bind", str(worker), WORKER_IN_SANDBOX]
    argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    argv += ["--size", str(disk_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", SANDBOX_TMP]
    argv += ["--remount-ro", "/", "--chdir", SANDBOX_TMP, python]
    return argv


@functools.cache
def bwrap_problem() -> str | None:
    """None when bwrap can start Python in the sandbox here; else why not (checked once per process)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    argv = bwrap_argv(sys.executable, 1, worker=os.devnull)
    try:
        res = subprocess.run(
            [*argv, "-I", "-S", "-c", "pass"], capture_output=True, text=True, timeout=30, env={}
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap did not run: {e}"
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        return f"bwrap cannot create the sandbox here: {why}"
    return None


def server_policy(allow_unsandboxed: bool) -> str | None:
    """``reinforge serve``'s policy, for it and its job workers; the line to print at start, if any."""
    set_unsandboxed_policy("allow" if allow_unsandboxed else "refuse")
    problem = bwrap_problem()
    if problem is None:
        return None
    if allow_unsandboxed:
        return (
            f"WARNING: --allow-unsandboxed-python-graders: {problem}, so python graders run WITHOUT the OS "
            "sandbox; every key holder's grader code can read what this server's user can read"
        )
    return f"python graders are refused: {problem} (--allow-unsandboxed-python-graders overrides, unsafely)"


def unsandboxed_error() -> str | None:
    """Why a python grader may not run here (policy ``refuse`` and no bwrap), else None."""
    problem = bwrap_problem()
    if problem is None or unsandboxed_policy() != "refuse":
        return None
    return (
        f"python graders run only in the OS sandbox on this server and {problem}; install bubblewrap, "
        "or start `reinforge serve --allow-unsandboxed-python-graders`"
    )


def warn_unsandboxed() -> None:
    """Say once per process that python graders run without the OS sandbox (policy ``warn``)."""
    global _warned
    if not _warned and unsandboxed_policy() == "warn":
        _warned = True
        print(
            f"reinforge: warning: python graders run WITHOUT the OS sandbox ({bwrap_problem()}); "
            "only rlimits and an audit hook contain them, so run only graders you trust",
            file=sys.stderr,
        )
