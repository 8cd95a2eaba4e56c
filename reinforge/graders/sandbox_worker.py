"""The sandboxed side of the python grader: one long-lived process that grades many rows.

Run by :mod:`reinforge.graders.sandbox` as ``python -I -B sandbox_worker.py TMPDIR LIMITS_JSON FLAGS``
with a clean environment, in its own session; ``FLAGS`` (comma-separated) holds ``bwrap`` when bubblewrap
already put it in its namespaces (see ``sandbox_bwrap.py``), and ``no-audit-hook`` only in the tests that
show the OS layers hold alone. Standard library only (it must not import reinforge).

Start-up, in order (each layer is skipped when the OS refuses it; ``hello`` reports which are on):
1. keep private copies of the protocol pipes; point fds 0, 1, 2 at /dev/null (prints go nowhere);
2. pre-import the libraries graders commonly use (numpy, rapidfuzz, ...), before any limit;
3. leave the network: a fresh, empty network namespace (bwrap's, or ``unshare(CLONE_NEWNET)`` as root);
4. drop root to ``nobody`` (the temp dir is handed over first unless it is world-writable), so the
   kernel refuses writes elsewhere, signals to the host and more than ``max_processes`` processes;
5. rlimits: address space, file size, open files, core dumps, processes (when not root);
6. an audit hook (PEP 578) that refuses sockets, fork/exec/spawn/kill, ctypes, rlimit changes,
   and any write, rename or delete outside the temp dir.

Protocol: one JSON object per line each way.
``{"op": "load", "source": ...}`` -> ``{"ok": true}`` | ``{"ok": false, "e": details}``;
``{"op": "grade", "rows": [[sample, item], ...]}`` -> one line per row, ``{"r": float}`` | ``{"e": details}``.
"""

import json
import math
import os
import resource
import shutil
import signal
import sys
import traceback

PRELOAD = (
    "numpy",
    "rapidfuzz",
    "rapidfuzz.fuzz",
    "rapidfuzz.utils",
    "re",
    "json",
    "math",
    "statistics",
    "collections",
    "datetime",
    "decimal",
    "fractions",
    "difflib",
    "itertools",
    "functools",
    "string",
    "unicodedata",
    "ast",
    "random",
    "hashlib",
    "textwrap",
)
NOBODY = 65534
CLONE_NEWNET = 0x40000000
BLOCKED_EVENTS = frozenset(
    {
        "socket.__new__",
        "socket.connect",
        "socket.bind",
        "socket.getaddrinfo",
        "socket.sendto",
        "socket.sendmsg",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "os.exec",
        "os.system",
        "subprocess.Popen",
        "pty.spawn",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "os.setuid",
        "os.setgid",
        "resource.prlimit",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sys.setprofile",
        "sys.settrace",
        "os.chroot",
        "mmap.__new__",
        "webbrowser.open",
    }
)
PATH_EVENTS = {  # event -> indices of path arguments that must lie inside the temp dir
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.symlink": (0, 1),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (1,),
    "sqlite3.connect": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "os.chflags": (0,),
    "os.setxattr": (0,),
    "os.removexattr": (0,),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class GradeTimeout(BaseException):
    """Raised by SIGALRM/SIGXCPU inside grader code; a BaseException so ``except Exception`` misses it."""


def _raise_timeout(signum, frame):
    raise GradeTimeout("CPU time limit exceeded" if signum == signal.SIGXCPU else "wall time limit exceeded")


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data) :]


def _set_limit(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
        return True
    except (ValueError, OSError):
        return False


def _leave_network():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0
    except Exception:
        return False


def _world_readable(path):
    """True when a user with no rights here (``nobody``) could read ``path``: o+x on every parent dir."""
    import stat

    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _drop_root(tmpdir):
    """Become ``nobody`` when root, unless the interpreter's own files would then be unreadable."""
    if os.getuid() != 0:
        return False
    if not all(
        _world_readable(os.path.dirname(p)) for p in (os.__file__, json.__file__) + tuple(sys.path) if p
    ):
        return False
    if not os.stat(tmpdir).st_mode & 0o002:  # bwrap's tmpfs is 1777 already (and chown is not allowed)
        os.chown(tmpdir, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return True


def _arm_cpu_limit(cpu_s):
    """Soft CPU limit = CPU used so far + this row's allowance, rounded up to the whole seconds the
    kernel counts, so a row gets at least ``cpu_s`` (SIGXCPU raises GradeTimeout)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime + max(1.0, cpu_s))
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))


def _end_leftover_processes():
    """Kill and reap whatever the grader forked, so nothing outlives its batch (nor sees the next grader).

    Only inside the OS sandbox: in its own PID namespace ``kill(-1)`` reaches only the grader's
    processes (never init, nor this worker); elsewhere it would reach every process of the user.
    """
    try:
        os.kill(-1, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _install_audit_hook(tmpdir):
    root = os.path.realpath(tmpdir)
    inside = root + os.sep
    arm_code, end_code = _arm_cpu_limit.__code__, _end_leftover_processes.__code__
    realpath, getframe, fspath = os.path.realpath, sys._getframe, os.fspath

    def allowed_path(path):
        if isinstance(path, int):
            return True  # an fd already opened
        try:
            p = realpath(fspath(path))
        except (TypeError, ValueError):
            return False
        if isinstance(p, bytes):
            p = p.decode(errors="replace")
        return p == root or p.startswith(inside) or p == "/dev/null"

    def hook(event, args):
        if event == "os.kill" and getframe(1).f_code is end_code:
            return
        if event in BLOCKED_EVENTS or event.startswith("ctypes."):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS
            )
            if writing and not allowed_path(path):
                raise PermissionError(
                    f"sandbox: writing {path!r} outside the sandbox temp dir is not allowed"
                )
            if isinstance(path, str | bytes) and not isinstance(path, int):
                p = fspath(path)
                p = p.decode(errors="replace") if isinstance(p, bytes) else p
                if p.startswith("/proc/") and (p.endswith("/environ") or p.endswith("/mem")):
                    raise PermissionError(f"sandbox: reading {p} is not allowed")
        elif event in PATH_EVENTS:
            for i in PATH_EVENTS[event]:
                if i < len(args) and not allowed_path(args[i]):
                    raise PermissionError(
                        f"sandbox: {event} on {args[i]!r} outside the temp dir is not allowed"
                    )
        elif event == "resource.setrlimit" and getframe(1).f_code is not arm_code:
            raise PermissionError("sandbox: changing resource limits is not allowed")

    sys.addaudithook(hook)


def _clean(tmpdir):
    with os.scandir(tmpdir) as it:
        entries = list(it)
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                os.remove(e.path)
        except OSError:
            pass


def _check_reward(value, max_abs):
    """Return (reward, None) or (None, details): a real, finite number within +-max_abs."""
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str | bytes):
        return None, f"grade() returned {type(value).__name__} {value!r:.80}; expected a float"
    try:
        reward = float(value)
    except Exception as e:
        return None, f"grade() returned {type(value).__name__} that does not convert to float: {e}"
    if not math.isfinite(reward):
        return None, f"grade() returned a non-finite value {reward!r}"
    if abs(reward) > max_abs:
        return None, f"grade() returned {reward!r}, outside [-{max_abs:g}, {max_abs:g}]"
    return reward, None


def _details(exc):
    if isinstance(exc, GradeTimeout):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "MemoryError: memory limit exceeded"
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if f.filename == "<grader>"]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


def main():
    tmpdir, limits = sys.argv[1], json.loads(sys.argv[2])
    flags = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else set()
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    proto_in = os.fdopen(in_fd, "rb")

    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:
            pass
    layers = {"os_sandbox": "bwrap" in flags}
    layers["network_namespace"] = layers["os_sandbox"] or _leave_network()
    layers["dropped_root"] = _drop_root(tmpdir)
    mb = 1024 * 1024
    layers["memory"] = _set_limit(resource.RLIMIT_AS, int(limits["memory_mb"]) * mb)
    layers["file_size"] = _set_limit(resource.RLIMIT_FSIZE, int(limits["disk_mb"]) * mb)
    _set_limit(resource.RLIMIT_NOFILE, 256)
    _set_limit(resource.RLIMIT_CORE, 0)
    layers["processes"] = (
        os.getuid() != 0
        and layers["dropped_root"]
        and _set_limit(resource.RLIMIT_NPROC, int(limits["max_processes"]))
    )
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversize writes raise OSError instead of killing us
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.signal(signal.SIGXCPU, _raise_timeout)
    os.chdir(tmpdir)
    sys.path[:] = [p for p in sys.path if p]  # no cwd on the path
    layers["audit_hook"] = "no-audit-hook" not in flags
    if layers["audit_hook"]:
        _install_audit_hook(tmpdir)
    _write_all(out_fd, (json.dumps({"hello": layers}) + "\n").encode())

    timeout_s, cpu_s, max_abs = (
        float(limits["timeout_s"]),
        float(limits["cpu_s"]),
        float(limits["max_abs_reward"]),
    )
    grade, me = None, os.getpid()
    while True:
        line = proto_in.readline()
        if not line:
            return
        msg = json.loads(line)
        if msg["op"] == "load":  # another grader: nothing of the last one may linger
            if layers["os_sandbox"]:
                _end_leftover_processes()
            namespace = {"__name__": "grader", "__builtins__": __builtins__}
            try:
                _arm_cpu_limit(cpu_s)
                signal.setitimer(signal.ITIMER_REAL, timeout_s)
                exec(compile(msg["source"], "<grader>", "exec"), namespace)
                signal.setitimer(signal.ITIMER_REAL, 0)
                grade = namespace.get("grade")
                reply = (
                    {"ok": callable(grade)}
                    if callable(grade)
                    else {"ok": False, "e": "source defines no grade()"}
                )
            except BaseException as e:  # noqa: B036 - grader code may raise anything
                signal.setitimer(signal.ITIMER_REAL, 0)
                reply = {"ok": False, "e": _details(e)}
            if os.getpid() != me:  # a child the grader forked never speaks the protocol
                os._exit(0)
            _write_all(out_fd, (json.dumps(reply) + "\n").encode())
            continue
        for sample, item in msg["rows"]:
            try:
                _arm_cpu_limit(cpu_s)
                signal.setitimer(signal.ITIMER_REAL, timeout_s)
                value = grade(sample, item)
                signal.setitimer(signal.ITIMER_REAL, 0)
                reward, err = _check_reward(value, max_abs)
                out = {"r": reward} if err is None else {"e": err}
            except BaseException as e:  # noqa: B036
                signal.setitimer(signal.ITIMER_REAL, 0)
                out = {"e": _details(e)}
            try:
                data = json.dumps(out)
            except Exception:
                data = json.dumps({"e": "could not encode the result"})
            if os.getpid() != me:
                os._exit(0)
            _write_all(out_fd, (data + "\n").encode())
            if os.listdir(tmpdir):
                _clean(tmpdir)
        if layers["os_sandbox"]:  # per batch: a batch holds one grader's rows
            _end_leftover_processes()


if __name__ == "__main__":
    main()
