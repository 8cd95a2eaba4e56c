"""``reinforge serve`` and ``reinforge keys create|list|revoke``: thin wrappers over the app and the worker pool."""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from reinforge.errors import ReinforgeError


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before any other work: a busy port is one line, not a late crash."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        why = "already in use (another server?)" if e.errno == errno.EADDRINUSE else e.strerror or str(e)
        raise ReinforgeError(
            f"--host {host} --port {port}: cannot listen there: {why}; stop the other server or pass another --port"
        ) from None
    sock.listen(2048)
    return sock


def _db_url(db: str | None, data_dir: Path) -> str:
    from reinforge.serve.db import default_db_url

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    url = db or default_db_url(data_dir)
    if not url.startswith(("sqlite", "postgresql")):
        raise ReinforgeError(f"--db {url!r}: give sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    return url


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, flag: str = "--expires-in") -> float:
    """Seconds in ``30d``, ``12h``, ``45m`` or ``90s``.

    >>> parse_duration("30d"), parse_duration("1.5h")
    (2592000.0, 5400.0)
    """
    unit, number = text[-1:].lower(), text[:-1]
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except (KeyError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise ReinforgeError(f"{flag} {text!r}: give a positive number and a unit (s, m, h or d), e.g. 30d")
    return seconds


def _engine(db: str | None, data_dir: Path):
    from reinforge.serve.db import make_engine

    return make_engine(_db_url(db, data_dir))


def keys_create_command(
    name: str, db: str | None, data_dir: Path, expires_in: str | None = None, admin: bool = False
) -> str:
    from reinforge.serve.db import create_key

    seconds = parse_duration(expires_in) if expires_in else None
    key_id, key = create_key(_engine(db, data_dir), name, expires_in=seconds, admin=admin)
    scope = " admin" if admin else ""
    until = f", expires in {expires_in}" if expires_in else ""
    print(f"Created{scope} API key {key_id} ({name}{until}); it is shown only once: {key}")
    return key


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t else "-"


def keys_list_command(db: str | None, data_dir: Path) -> None:
    """Every key (never the key itself): id, name, scope, created, expires (UTC), state."""
    from reinforge.serve.db import list_keys

    rows, now = list_keys(_engine(db, data_dir)), time.time()
    print(f"{'ID':<30} {'NAME':<20} {'SCOPE':<6} {'CREATED':<17} {'EXPIRES':<17} STATE")
    for k in rows:
        expired = k.expires_at is not None and k.expires_at <= now
        state = "revoked" if k.revoked_at else "expired" if expired else "active"
        scope = "admin" if k.admin else "user"
        print(
            f"{k.id:<30} {k.name[:20]:<20} {scope:<6} {_when(k.created_at):<17} {_when(k.expires_at):<17} {state}"
        )


def keys_revoke_command(key_id: str, db: str | None, data_dir: Path) -> None:
    from reinforge.serve.db import revoke_key

    row = revoke_key(_engine(db, data_dir), key_id)
    if row is None:
        raise ReinforgeError(f"keys revoke {key_id}: no such key; `reinforge keys list` shows the key ids")
    print(f"Revoked API key {key_id} ({row.name}); requests with it now get 401")


def serve_command(
    host: str,
    port: int,
    db: str | None,
    data_dir: Path,
    workers: int,
    models: list[str],
    max_upload_mb: int = 512,
    allow_unsandboxed_python_graders: bool = False,
    limits: dict[str, Any] | None = None,
) -> None:
    """``limits``: ServeSettings fields (body sizes, jobs per key, rates, timeouts) to change."""
    import uvicorn

    from reinforge.graders.sandbox_bwrap import server_policy
    from reinforge.serve.app import ServeSettings, create_app
    from reinforge.serve.db import make_engine, session_factory
    from reinforge.serve.limits import uvicorn_limits
    from reinforge.serve.pool import WorkerPool, recover_at_start, supervisor_name

    for m in models:
        if not (Path(m) / "config.json").exists():
            raise ReinforgeError(f"--model {m}: not a model directory (no config.json)")
    with listen(host, port) as sock:
        sandbox_note = server_policy(allow_unsandboxed_python_graders)  # before the workers inherit it
        if sandbox_note:
            print(f"reinforge serve: {sandbox_note}", file=sys.stderr)
        url = _db_url(db, data_dir)
        name = supervisor_name("serve")  # only this machine's jobs, and jobs whose heartbeat stopped
        n = recover_at_start(session_factory(make_engine(url)), name) if workers else 0
        if n:
            print(f"requeued {n} interrupted job(s); they resume from their last checkpoints")
        settings = ServeSettings(
            data_dir=data_dir,
            db_url=url,
            models=models,
            max_upload_bytes=max_upload_mb * 1024 * 1024,
            **(limits or {}),
        )
        app = create_app(settings)
        pool = WorkerPool(url, Path(data_dir).resolve(), workers, name)
        if workers:  # --workers 0: the API only; `reinforge worker` processes train the jobs
            pool.start()
        print(
            f"reinforge serve: http://{host}:{port}/  (API at /v1, {workers} worker(s), data in {data_dir})"
        )
        try:
            server_limits = uvicorn_limits(
                settings.request_timeout_s, settings.keep_alive_s, settings.max_connections
            )
            uvicorn.Server(uvicorn.Config(app, log_level="warning", **server_limits)).run(sockets=[sock])
        finally:
            pool.stop()


def worker_command(
    db: str,
    data_dir: Path,
    gpus: list[str] | None,
    workers: int,
    heartbeat_timeout: float,
) -> None:
    """``reinforge worker``: job workers on this machine against the service's database, until SIGTERM or
    Ctrl-C (their jobs are checkpointed and queued again)."""
    import signal
    import threading

    from reinforge.serve.db import make_engine, session_factory
    from reinforge.serve.pool import WorkerPool, recover_at_start, supervisor_name

    n = len(gpus) if gpus else workers
    if n < 1:
        raise ReinforgeError(f"--workers {workers}: a worker machine runs 1 or more; give --workers 1")
    if heartbeat_timeout <= 0:
        raise ReinforgeError(f"--heartbeat-timeout {heartbeat_timeout}: give seconds > 0 (default 60)")
    url = _db_url(db, data_dir)
    name = supervisor_name(f"worker{os.getpid()}")  # its own prefix: other workers here are not its
    recover_at_start(session_factory(make_engine(url)), name, heartbeat_timeout)
    pool = WorkerPool(url, Path(data_dir).resolve(), n, name, gpus, heartbeat_timeout)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    pool.start()
    where = f"GPUs {','.join(gpus)}" if gpus else f"{n} process(es)"
    print(f"reinforge worker {name}: {where}, data in {data_dir}, jobs from {url.split('@')[-1]}", flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        pool.stop()
