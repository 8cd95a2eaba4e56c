"""The OS sandbox's command line, and what python graders do where bubblewrap cannot run:
the CLI warns once and grades; serve refuses them unless started with --allow-unsandboxed-python-graders."""

from __future__ import annotations

import json
import sys

import pytest

from reinforge.graders import sandbox_bwrap
from reinforge.graders.sandbox import SandboxLimits, SandboxPool
from reinforge.graders.sandbox_bwrap import POLICY_ENV, bwrap_argv, bwrap_problem, server_policy

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="bubblewrap is Linux only")
ONE = "def grade(sample, item):\n    return 1.0\n"
SPEC = {"type": "python", "name": "one", "source": ONE}


@pytest.fixture
def no_bwrap(tmp_path, monkeypatch):
    """A machine without bubblewrap: an empty PATH (workers start from sys.executable's full path)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(POLICY_ENV, "warn")  # restored afterwards, whatever the test sets
    monkeypatch.setattr(sandbox_bwrap, "_warned", False)
    bwrap_problem.cache_clear()
    yield
    bwrap_problem.cache_clear()


def test_command_line_holds_only_the_runtime():
    argv = bwrap_argv(sys.executable, 64)
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent", "--new-session"):
        assert flag in argv, flag
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    t = argv.index("--tmpfs")
    assert argv[t - 4 : t + 2] == ["--size", str(64 * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp"]
    sources = {argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"}
    assert "/" not in sources and "/tmp" not in sources and "/etc" not in sources
    assert not any(a == "--bind" for a in argv)  # nothing of the host is writable


def test_cli_warns_once_and_grades(no_bwrap, tmp_path):
    from typer.testing import CliRunner

    from reinforge.cli import app

    spec, inp = tmp_path / "g.json", tmp_path / "in.jsonl"
    spec.write_text(json.dumps({**SPEC, "limits": {"timeout_s": 7.25}}))  # its own pool: fresh workers
    inp.write_text(json.dumps({"item": {}, "sample": {"output_text": "x"}}) + "\n")
    outputs = [
        CliRunner().invoke(app, ["grade", "--grader", str(spec), "--input", str(inp)]) for _ in range(2)
    ]
    assert all(r.exit_code == 0 and '"reward": 1.0' in r.output for r in outputs), outputs[0].output
    said = "".join(r.output for r in outputs)
    assert said.count("WITHOUT the OS sandbox") == 1 and "bubblewrap is not installed" in said


def test_serve_refuses_python_graders_without_bwrap(no_bwrap, tmp_path):
    from fastapi.testclient import TestClient

    from reinforge.serve.app import ServeSettings, create_app
    from reinforge.serve.db import create_key, default_db_url, make_engine

    assert "refused" in server_policy(allow_unsandboxed=False)
    client = TestClient(create_app(ServeSettings(data_dir=tmp_path)))
    headers = {"Authorization": f"Bearer {create_key(make_engine(default_db_url(tmp_path)), 'bob')[1]}"}
    body = {"grader": SPEC, "model_sample": "x"}
    r = client.post("/v1/fine_tuning/alpha/graders/run", headers=headers, json=body)
    assert r.status_code == 400 and "--allow-unsandboxed-python-graders" in r.text, r.text
    r = client.post("/v1/fine_tuning/alpha/graders/validate", headers=headers, json={"grader": SPEC})
    assert r.status_code == 400 and "OS sandbox" in r.text
    pool = SandboxPool(workers=1, limits=SandboxLimits(timeout_s=7.5))  # a library caller is refused too
    reward, err = pool.run(ONE, [({}, {})])[0]
    pool.close()
    assert reward is None and err.startswith("server:") and "bubblewrap" in err


def test_serve_allows_them_when_told_loudly(no_bwrap, tmp_path):
    from reinforge.graders.registry import run

    note = server_policy(allow_unsandboxed=True)
    assert note.startswith("WARNING") and "WITHOUT the OS sandbox" in note
    assert run({**SPEC, "limits": {"timeout_s": 7.75}}, "x")["reward"] == 1.0


def test_audit_hook_stays_on_outside_the_os_sandbox(no_bwrap):
    pool = SandboxPool(workers=1, limits=SandboxLimits(timeout_s=8.0), audit_hook=False)
    reward, err = pool.run(ONE, [({}, {})])[0]
    pool.close()
    assert reward is None and "only inside the OS sandbox" in err
