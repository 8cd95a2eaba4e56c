"""Hostile python graders in the OS sandbox (bubblewrap): each attack is contained and every other row
of the same batch is graded. Run through the pool with and without the audit hook (the OS layers must
hold alone), through ``reinforge grade`` and through serve's ``/v1/fine_tuning/alpha/graders/run``.

An attack row returns 1.0 when it succeeds, so a contained attack scores 0 (an error or "found
nothing"); the host also checks its own evidence: the victim process lives, the listener saw no
connection, no file appeared outside, no secret appears in any result.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from reinforge.graders.sandbox import SandboxLimits, SandboxPool
from reinforge.graders.sandbox_bwrap import bwrap_problem

pytestmark = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"the OS sandbox cannot run here: {bwrap_problem()}"
)

TENANT_SECRET = "tenant-a-training-row-7f3c"
ENV_SECRET = "server-env-secret-91d2"
LIMITS = {"memory_mb": 256, "cpu_s": 1, "timeout_s": 3, "disk_mb": 8, "max_processes": 32}
HOSTILE = r"""
import os, signal, socket

def _files_under(d):
    out = []
    for root, _, files in os.walk(d):
        for f in files:
            try:
                with open(os.path.join(root, f)) as fh:
                    out.append(fh.read(200))
            except OSError:
                pass
    return out

def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]

def grade(sample, item):
    k = item["case"]
    if k == "ok":
        return float(sample["output_text"] == item["answer"])
    if k == "proc_data_dir":  # the data dir from any command line, then its files, as in the report
        dirs = [item["data_dir"]]
        for pid in os.listdir("/proc"):
            try:
                args = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")
            except (OSError, ValueError):
                continue
            dirs += [v for a, v in zip(args, args[1:]) if a == "--data-dir"]
        found = [t for d in dirs for t in _files_under(d)]
        if found:
            raise ValueError("leaked: " + " | ".join(found))
        return 0.0
    if k == "list_processes":
        return float(bool(_pids()))
    if k == "signal_processes":
        hit = 0
        for pid in [item["victim_pid"], *_pids()]:
            try:
                os.kill(pid, signal.SIGKILL)
                hit += 1
            except (ProcessLookupError, PermissionError):
                pass
        return float(hit > 0)
    if k == "connect_loopback":
        socket.create_connection(("127.0.0.1", item["port"]), timeout=1).close()
        return 1.0
    if k == "write_outside":
        wrote = 0
        for path in (item["outside"], "/usr/lib/reinforge-probe", "/reinforge-probe", "/dev/shm/probe"):
            try:
                with open(path, "w") as f:
                    f.write("x")
                wrote += 1
            except OSError:
                pass
        return float(wrote > 0)
    if k == "read_env":
        found = [v for key, v in os.environ.items() if "SECRET" in key]
        for pid in os.listdir("/proc"):
            try:
                found.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
            except OSError:
                pass
        found = [f for f in found if "SECRET" in f]
        if found:
            raise ValueError("leaked: " + " | ".join(found))
        return 0.0
    if k == "fork_flood":
        while True:
            os.fork()
    if k == "alloc_3gb":
        return float(len(bytearray(3 * 1024**3)) > 0)
    if k == "disk_filler":
        for i in range(10_000):  # 1 MB files: the tmpfs fills before any one file meets the size limit
            with open(f"fill-{i}", "wb") as f:
                f.write(b"x" * 1024 * 1024)
        return 1.0
    if k == "busy_loop":
        while True:
            pass
    if k == "ptrace":
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        attached = [libc.ptrace(16, pid, 0, 0) == 0 for pid in (1, item["victim_pid"])]  # PTRACE_ATTACH
        return float(any(attached))
    raise ValueError(f"unknown case {k}")
"""
ATTACKS = [
    "proc_data_dir",
    "list_processes",
    "signal_processes",
    "connect_loopback",
    "write_outside",
    "read_env",
    "fork_flood",
    "alloc_3gb",
    "disk_filler",
    "busy_loop",
    "ptrace",
]
ERROR_HINTS = {  # what the details say where the row must fail (rather than find nothing)
    "alloc_3gb": "Memory",
    "disk_filler": "No space left",
    "busy_loop": "time limit",
}


def batch(attacks: list[str]) -> list[str]:
    """Each attack between two ordinary rows, so a broken neighbour shows."""
    return ["ok"] + [c for a in attacks for c in (a, "ok")]


@pytest.fixture(scope="module")
def exposed():
    """A directory any user may read and write, outside the sandbox (as /srv or /var/lib can be):
    another tenant's data dir with a training file, and where a grader would write. Not under tmp_path,
    whose parents only root may enter."""
    base = Path(tempfile.mkdtemp(prefix="reinforge-exposed-"))
    base.chmod(0o777)
    files = base / "data" / "files"
    files.mkdir(parents=True)
    for d in (base / "data", files):
        d.chmod(0o755)
    (files / "file-a.jsonl").write_text(json.dumps({"messages": [{"content": TENANT_SECRET}]}) + "\n")
    (files / "file-a.jsonl").chmod(0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def victim(exposed):
    """A server-like process outside the sandbox: --data-dir on its command line, a secret in its env."""
    env = {**os.environ, "REINFORGE_VICTIM_SECRET": ENV_SECRET}
    code = "import time; time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", code, "--data-dir", str(exposed / "data")], env=env)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    s.setblocking(False)
    yield s
    s.close()


@pytest.fixture
def hostile_env(exposed, victim, listener, monkeypatch):
    """The item every row gets, with the server's own secret in its environment."""
    monkeypatch.setenv("REINFORGE_SERVER_SECRET", ENV_SECRET)
    return {
        "answer": "4",
        "data_dir": str(exposed / "data"),
        "victim_pid": victim.pid,
        "port": listener.getsockname()[1],
        "outside": str(exposed / "written-by-grader"),
    }


def check_contained(cases: list[str], results: list[tuple[float, str]], exposed, victim, listener):
    """Every ``ok`` row is graded 1.0; every attack scores 0 and leaks nothing; the host is untouched."""
    for case, (reward, details) in zip(cases, results, strict=True):
        assert TENANT_SECRET not in details and ENV_SECRET not in details, (case, details)
        if case == "ok":
            assert (reward, details) == (1.0, ""), (case, details)
        else:
            assert reward == 0.0, (case, details)
            if case in ERROR_HINTS:
                assert ERROR_HINTS[case] in details, (case, details)
    assert victim.poll() is None, "the victim process was killed"
    assert not (exposed / "written-by-grader").exists()
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


@pytest.mark.parametrize("audit_hook", [True, False], ids=["all-layers", "os-layers-alone"])
def test_pool_contains_every_attack(audit_hook, hostile_env, exposed, victim, listener):
    pool = SandboxPool(workers=1, limits=SandboxLimits(**LIMITS), audit_hook=audit_hook)
    try:
        pool.run("def grade(s, i):\n    return 1.0\n", [({}, {})])
        layers = pool.info()
        attacks = [a for a in ATTACKS if audit_hook or a != "fork_flood" or layers["processes"]]
        cases = batch(attacks)
        rows = [({"output_text": "4"}, {**hostile_env, "case": c}) for c in cases]
        results = [(r or 0.0, e or "") for r, e in pool.run(HOSTILE, rows)]
    finally:
        pool.close()
    check_contained(cases, results, exposed, victim, listener)
    assert layers["os_sandbox"] and layers["audit_hook"] is audit_hook


def test_grade_command_contains_every_attack(hostile_env, exposed, victim, listener, tmp_path):
    from typer.testing import CliRunner

    from reinforge.cli import app

    cases = batch(ATTACKS)
    spec, inp, out = tmp_path / "g.json", tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    spec.write_text(json.dumps({"type": "python", "name": "hostile", "source": HOSTILE, "limits": LIMITS}))
    rows = [{"item": {**hostile_env, "case": c}, "sample": {"output_text": "4"}} for c in cases]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, ["grade", "--grader", str(spec), "--input", str(inp), "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "WITHOUT the OS sandbox" not in res.output
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    results = [(g["reward"], json.dumps(g["errors"]) if g["errors"] else "") for g in graded]
    check_contained(cases, results, exposed, victim, listener)


def test_serve_graders_run_contains_every_attack(hostile_env, exposed, victim, listener):
    """Tenant A uploads a training file to a server whose data dir anyone may read; tenant B's
    python grader, posted to graders/run, cannot reach it, nor anything else on the host."""
    from fastapi.testclient import TestClient

    from reinforge.serve.app import ServeSettings, create_app
    from reinforge.serve.db import create_key, default_db_url, make_engine

    data_dir = exposed / "server-data"
    client = TestClient(create_app(ServeSettings(data_dir=data_dir)))
    eng = make_engine(default_db_url(data_dir))
    alice, bob = ({"Authorization": f"Bearer {create_key(eng, n)[1]}"} for n in ("alice", "bob"))
    for d in (data_dir, data_dir / "files"):
        d.chmod(0o755)
    row = {"messages": [{"role": "user", "content": TENANT_SECRET}], "answer": "4"}
    up = client.post(
        "/v1/files",
        headers=alice,
        files={"file": ("train.jsonl", json.dumps(row).encode() + b"\n")},
        data={"purpose": "fine-tune"},
    )
    assert up.status_code == 200, up.text
    for f in (data_dir / "files").iterdir():
        f.chmod(0o644)
    env = {**hostile_env, "data_dir": str(data_dir)}
    grader = {"type": "python", "name": "hostile", "source": HOSTILE, "limits": LIMITS}
    cases, results = batch(ATTACKS), []
    for c in cases:
        body = {"grader": grader, "model_sample": "4", "item": {**env, "case": c}}
        r = client.post("/v1/fine_tuning/alpha/graders/run", headers=bob, json=body)
        assert r.status_code == 200, (c, r.text)
        errors = r.json()["metadata"]["errors"]
        fired = {k: v for k, v in errors.items() if v}
        results.append((r.json()["reward"], json.dumps(fired) if fired else ""))
    check_contained(cases, results, exposed, victim, listener)
