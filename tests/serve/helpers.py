"""Helpers for the service tests: a real ``reinforge serve`` on loopback (a subprocess), rows, graders."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ADDITION_ROWS = [
    ("12+15", "27"),
    ("23+31", "54"),
    ("40+18", "58"),
    ("35+22", "57"),
    ("61+17", "78"),
    ("44+44", "88"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, timeout: float = 120) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "reinforge.cli", *args], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@dataclass
class Server:
    url: str
    data_dir: Path
    db: str | None
    proc: subprocess.Popen
    log: Path

    def new_key(self, name: str = "test") -> str:
        args = ["keys", "create", "--name", name, "--data-dir", str(self.data_dir)]
        if self.db:
            args += ["--db", self.db]
        return cli(*args).split()[-1]

    def kill(self) -> None:
        """SIGKILL the server's whole process group: the API and its workers die at once, like a crash."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start_server(data_dir: Path, db: str | None = None, workers: int = 1, port: int | None = None) -> Server:
    port = port or free_port()
    args = [
        sys.executable,
        "-m",
        "reinforge.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--workers",
        str(workers),
    ]
    if db:
        args += ["--db", db]
    log = data_dir.parent / f"{data_dir.name}-server-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # generous: CI machines can be busy
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return Server(url, data_dir, db, proc, log)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-3000:]}")


def rft_rows(pairs=ADDITION_ROWS) -> list[dict]:
    return [{"messages": [{"role": "user", "content": q}], "answer": a} for q, a in pairs]


def sft_rows(pairs=ADDITION_ROWS) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs
    ]


STRING_CHECK = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


def add_running_job(
    sf, train: Path, method: dict, model_dir, run_dir: Path, config: dict | None = None
) -> str:
    """A training file and a job a worker (token ``w0:1:x``) has claimed, as the API and claim_next leave
    them; ``config=None`` is a job from before configs were stored with jobs."""
    from reinforge.serve.db import FileRow, Job

    with sf() as s:
        s.add(FileRow(id="file-t", owner="o", filename=train.name, purpose="fine-tune", bytes=1, path=str(train),
                      kind="chat", rows=sum(1 for _ in train.open())))  # fmt: skip
        s.add(Job(id="ftjob-1", owner="o", model="tiny:addition:1m", model_path=str(model_dir), method=method,
                  config=config, training_file="file-t", status="running", worker="w0:1:x", attempts=1,
                  run_dir=str(run_dir)))  # fmt: skip
        s.commit()
    return "ftjob-1"
