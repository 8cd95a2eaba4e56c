"""``reinforge serve`` and ``reinforge keys create``: thin wrappers over the app and the worker pool."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

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


def keys_create_command(name: str, db: str | None, data_dir: Path) -> str:
    from reinforge.serve.db import create_key, make_engine

    key_id, key = create_key(make_engine(_db_url(db, data_dir)), name)
    print(f"Created API key {key_id} ({name}); it is shown only once: {key}")
    return key


def serve_command(
    host: str,
    port: int,
    db: str | None,
    data_dir: Path,
    workers: int,
    models: list[str],
    max_upload_mb: int = 512,
) -> None:
    import uvicorn

    from reinforge.serve.app import ServeSettings, create_app
    from reinforge.serve.db import make_engine, session_factory
    from reinforge.serve.worker import WorkerPool, recover_jobs

    for m in models:
        if not (Path(m) / "config.json").exists():
            raise ReinforgeError(f"--model {m}: not a model directory (no config.json)")
    with listen(host, port) as sock:
        url = _db_url(db, data_dir)
        n = recover_jobs(session_factory(make_engine(url)), "Server restarted while the job was running")
        if n:
            print(f"requeued {n} interrupted job(s); they resume from their last checkpoints")
        app = create_app(
            ServeSettings(
                data_dir=data_dir, db_url=url, models=models, max_upload_bytes=max_upload_mb * 1024 * 1024
            )
        )
        pool = WorkerPool(url, Path(data_dir).resolve(), workers)
        pool.start()
        print(
            f"reinforge serve: http://{host}:{port}/  (API at /v1, {workers} worker(s), data in {data_dir})"
        )
        try:
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
        finally:
            pool.stop()
