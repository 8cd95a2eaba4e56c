"""Helpers for the service tests: a real ``reinforge serve`` on loopback (a subprocess), rows, graders."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers import write_jsonl

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


def start_server(
    data_dir: Path,
    db: str | None = None,
    workers: int = 1,
    port: int | None = None,
    models: tuple[Path, ...] = (),
) -> Server:
    """``reinforge serve`` in a subprocess; ``models``: model directories it serves (``--model``)."""
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
    for m in models:
        args += ["--model", str(m)]
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


def quick_rft_method(grader: dict = STRING_CHECK, **reinforge) -> dict:
    """A job's ``method`` for quick RFT on the tiny addition model: 2 prompts x 2 samples per step;
    ``reinforge``: the reinforge-specific settings (steps, max_new_tokens, beta, ...)."""
    return {
        "type": "reinforcement",
        "reinforcement": {
            "grader": grader,
            "hyperparameters": {"batch_size": 2, "compute_multiplier": 0.25},
        },
        "reinforge": reinforge,
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


# ---------------------------------------------------------------- jobs through a real server


def api(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def long_job(c: httpx.Client, tmp_path: Path, steps: int, **extra) -> str:
    """An RFT job of ``steps`` quick steps on the tiny addition model; ``extra``: reinforge settings."""
    path = write_jsonl(tmp_path / "train.jsonl", rft_rows())
    fid = c.post(
        "/files", files={"file": ("train.jsonl", path.read_bytes())}, data={"purpose": "fine-tune"}
    ).json()["id"]
    r = c.post(
        "/fine_tuning/jobs",
        json={
            "model": "tiny:addition:1m",
            "training_file": fid,
            "method": quick_rft_method(steps=steps, max_new_tokens=4, beta=0.0, **extra),
        },
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


def train_steps(c: httpx.Client, job_id: str) -> list[int]:
    data = c.get(f"/fine_tuning/jobs/{job_id}/metrics").json()["data"]
    return [d["step"] for d in data if d.get("kind") == "train"]


def status(c: httpx.Client, job_id: str) -> str:
    return c.get(f"/fine_tuning/jobs/{job_id}").json()["status"]


# ---------------------------------------------------------------- a PostgreSQL server of our own


@dataclass
class Postgres:
    """A throwaway PostgreSQL server from Debian's ``postgresql`` package, on loopback, which a test may
    stop and start (a database restart). PostgreSQL refuses to run as root: as root it runs as
    ``nobody`` in a directory nobody owns (pytest's tmp_path sits under a 0700 root directory, so this
    directory lives beside it, and :meth:`remove` deletes it)."""

    bindir: str
    root: str
    port: int

    @classmethod
    def create(cls) -> Postgres | None:
        """None when PostgreSQL is not installed."""
        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdb:
            return None
        pg = cls(os.path.dirname(initdb[-1]), tempfile.mkdtemp(prefix="reinforge-pg-"), free_port())
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(pg.root, nobody.pw_uid, nobody.pw_gid)
        pg.ctl("initdb", "-o", "-U reinforge --auth=trust -E UTF8")
        pg.start()
        return pg

    @property
    def url(self) -> str:
        return f"postgresql://reinforge@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        cmd = [*as_user, f"{self.bindir}/pg_ctl", "-D", os.path.join(self.root, "data"), *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.ctl("-l", os.path.join(self.root, "log"), "-w", "-t", "60", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every connection (as a restart does); ``immediate`` is a crash."""
        self.ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class SmallDisk:
    """A directory on a tmpfs of its own, so that writes there really fail with ENOSPC."""

    path: Path

    @classmethod
    def mount(cls, path: Path, size: str) -> SmallDisk | None:
        """None when this process may not mount (not root, or no mount namespace rights)."""
        path.mkdir(parents=True, exist_ok=True)
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)]
        if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        return cls(path)

    def resize(self, size: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True
        )

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


# ---------------------------------------------------------------- the web UI in chromium

CHROMIUM = "/usr/bin/chromium"  # Debian's; the browser tests skip without it


def launch_chromium(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
    )


def signed_in_page(browser, url: str, key: str):
    """A page in a browser context of its own (its own session cookie), signed in with ``key``."""
    page = browser.new_context().new_page()
    page.goto(f"{url}/")
    page.fill("#key-input", key)
    page.click("#login")
    page.wait_for_selector("#session:not([hidden])")
    return page


# ---------------------------------------------------------------- a tune study for /v1/studies


def two_objective_study(path, n: int = 8):
    """loss = (x - 1)^2 and cost = x: the front lies at x <= 1; ``big`` changes nothing."""
    from reinforge.tune.space import Choice, Float
    from reinforge.tune.study import Study

    study = Study(
        {"x": Float(-2, 2), "big": Choice([False, True])},
        sampler="random",
        directions={"loss": "minimize", "cost": "minimize"},
        storage=path,
        name="demo",
    )
    for _ in range(n):
        t = study.ask()
        study.tell(t.number, [(t.params["x"] - 1) ** 2, t.params["x"]])
    return study
