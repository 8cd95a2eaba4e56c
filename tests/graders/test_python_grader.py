"""The python grader and its sandbox: every hostile row scores 0 with an error, the rest grade normally."""

import json
import os
import sys
from pathlib import Path

import pytest

from reinforge.graders import from_spec, run
from reinforge.graders.base import make_sample
from reinforge.graders.python_grader import source_errors
from tests.graders.openai_examples import PYTHON

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox uses Linux rlimits")

PROBE = f"reinforge_sandbox_probe_{os.getpid()}"
HOSTILE = f'''
import os, socket
def grade(sample, item):
    k = item["case"]
    if k == "ok":
        return float(sample["output_text"] == item["answer"])
    if k == "infinite_loop":
        while True:
            pass
    if k == "swallowing_loop":          # catches the sandbox's own timeout; the host kills it
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
    if k == "alloc_8gb":
        return float(len(bytearray(8 * 1024 ** 3)))
    if k == "fork_bomb":
        while True:
            os.fork()
    if k == "subprocess":
        import subprocess
        return float(subprocess.call(["true"]) == 0)
    if k == "socket":
        s = socket.create_connection(("127.0.0.1", int(item["port"])), timeout=2)
        return 1.0
    if k == "write_home":
        with open(os.path.join(item["home"], "{PROBE}"), "w") as f:
            f.write("x")
        return 1.0
    if k == "write_tmp_ok":             # its own temp dir is writable
        with open("scratch.txt", "w") as f:
            f.write("x")
        return 1.0
    if k == "env_secret":
        return float(len(os.environ["REINFORGE_TEST_SECRET"]))
    if k == "kill_host":
        os.kill(os.getppid(), 9)
    if k == "ctypes_fork":
        import ctypes
        return float(ctypes.CDLL(None).fork())
    if k == "exit":
        os._exit(1)
    if k == "nan":
        return float("nan")
    if k == "str":
        return "1.0"
    if k == "big":
        return 1e9
    if k == "raise":
        raise ValueError("bad row")
    return 0.25
'''
CASES = [
    "ok",
    "infinite_loop",
    "swallowing_loop",
    "alloc_8gb",
    "fork_bomb",
    "subprocess",
    "socket",
    "write_home",
    "write_tmp_ok",
    "env_secret",
    "kill_host",
    "ctypes_fork",
    "exit",
    "nan",
    "str",
    "big",
    "raise",
    "ok",
]
EXPECTED_OK = {"ok": 1.0, "write_tmp_ok": 1.0}


@pytest.fixture(scope="module")
def listener():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def hostile_rows(port: int, home: Path) -> list[dict]:
    return [
        {"item": {"case": c, "answer": "4", "port": port, "home": str(home)}, "sample": {"output_text": "4"}}
        for c in CASES
    ]


def test_hostile_batch_rows_fail_alone(listener, tmp_path, monkeypatch):
    monkeypatch.setenv("REINFORGE_TEST_SECRET", "hunter2")
    home = Path.home()
    spec = {"type": "python", "name": "hostile", "source": HOSTILE, "limits": {"timeout_s": 1.5, "cpu_s": 2}}
    g = from_spec(spec)
    rows = hostile_rows(listener, home)
    grades = g.grade_batch([(r["item"], make_sample(r["sample"]["output_text"])) for r in rows])
    for case, grade in zip(CASES, grades):
        if case in EXPECTED_OK:
            assert grade.reward == EXPECTED_OK[case] and grade.ok, (case, grade)
        else:
            assert grade.reward == 0.0, (case, grade)
            assert grade.errors == {"python_grader_runtime_error": True}, (case, grade)
            assert grade.metadata["python_grader_runtime_error_details"], case
    assert not (home / PROBE).exists()
    details = {c: g.metadata.get("python_grader_runtime_error_details", "") for c, g in zip(CASES, grades)}
    assert "time" in details["infinite_loop"] and "time" in details["swallowing_loop"]
    assert "Memory" in details["alloc_8gb"]
    assert "KeyError" in details["env_secret"]
    assert "non-finite" in details["nan"] and "str" in details["str"] and "outside" in details["big"]


def test_grade_command_exits_zero_with_every_row(listener, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from reinforge.cli import app

    monkeypatch.setenv("REINFORGE_TEST_SECRET", "hunter2")
    spec_path = tmp_path / "g.json"
    spec_path.write_text(
        json.dumps(
            {"type": "python", "name": "h", "source": HOSTILE, "limits": {"timeout_s": 1.5, "cpu_s": 2}}
        )
    )
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in hostile_rows(listener, tmp_path / "fakehome")))
    (tmp_path / "fakehome").mkdir()
    res = CliRunner().invoke(
        app, ["grade", "--grader", str(spec_path), "--input", str(inp), "--output", str(out)]
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(CASES)
    assert [r["reward"] for r in rows] == [EXPECTED_OK.get(c, 0.0) for c in CASES]
    assert all(
        r["errors"].get("python_grader_runtime_error") for c, r in zip(CASES, rows) if c not in EXPECTED_OK
    )
    assert not (tmp_path / "fakehome" / PROBE).exists()


def test_openai_example_and_run_shape():
    out = run(PYTHON, "fuzzy wuzzy was a bear", {"reference_answer": "fuzzy wuzzy was a bear"})
    assert out["reward"] == pytest.approx(1.0)
    errors = out["metadata"]["errors"]
    assert (
        errors["python_grader_runtime_error"] is False
        and errors["python_grader_runtime_error_details"] is None
    )


def test_pool_is_reused():
    """A batch runs on the warm pool's processes (its throughput is the benchmark's to measure)."""
    g = from_spec({"type": "python", "name": "len", "source": "def grade(sample, item):\n    return 1.0\n"})
    g.grade_batch([({}, make_sample("x"))] * 8)  # warm the pool
    pids = {w.proc.pid for w in g.pool.workers if w.proc}
    grades = g.grade_batch([({}, make_sample("x"))] * 2000)
    assert [x.reward for x in grades] == [1.0] * 2000
    assert pids <= {w.proc.pid for w in g.pool.workers if w.proc}  # same processes


def test_source_that_does_not_load_fails_every_row():
    g = from_spec(
        {
            "type": "python",
            "name": "x",
            "source": "raise RuntimeError('boom')\ndef grade(s, i):\n    return 1\n",
        }
    )
    grades = g.grade_batch([({}, make_sample("a"))] * 3)
    assert all(x.reward == 0 and "boom" in x.metadata["python_grader_runtime_error_details"] for x in grades)


@pytest.mark.parametrize(
    "source, message",
    [
        ("def grade(sample, item)\n    return 1", "syntax error"),
        ("def score(sample, item):\n    return 1\n", "defines no top-level"),
        ("x = 1\n" + "#" * (256 * 1024), "256 kB"),
        (42, "must be a string"),
    ],
)
def test_static_source_checks(source, message):
    errors = source_errors(source)
    assert errors and message in errors[0]
