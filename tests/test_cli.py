"""The ``reinforge`` command: user errors are one line on stderr, exit 2, no traceback; `config` lists keys."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reinforge.cli import app

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_user_error(res, *needles: str) -> str:
    """Exit 2, one ``error:`` line naming what is wrong, no traceback."""
    text = res.stderr.strip()
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert text.startswith("error: ") and "\n" not in text and "Traceback" not in res.output, text
    for needle in needles:
        assert needle in text, text
    return text


def test_rlhf_nested_key_refused_before_any_work(tmp_path):
    # used to run SFT, sampling and the reward model (26 s), then die in PPO with a pydantic traceback
    out = tmp_path / "run"
    res = invoke(
        "rlhf", ROOT / "examples/rlhf/rlhf.yaml", "--set", "ppo.stepz=4", "--set", f"output_dir={out}"
    )
    assert_user_error(res, "--set ppo.stepz=4: ppo.stepz: unknown key; did you mean steps?", "config rlhf")
    assert not out.exists()  # nothing was started


@pytest.mark.parametrize(
    "section, needle",
    [
        ("rm: {batch_size: 0}", "rm: batch_size=0: must be >= 1"),  # a stage's own rule, under its name
        ("sft: {epoch: 1}", "sft.epoch: unknown key; did you mean epochs?"),
        ("ppo: {num_minibatches: 3}", "ppo: num_minibatches=3 must divide prompts_per_step=64"),
        # a key the loop sets for each stage was silently ignored
        ("ppo: {output_dir: x}", "ppo.output_dir: the RLHF loop sets it for each stage; remove it"),
        # the labeller was built after SFT and the prompts
        ("labeller: {type: humans}", "labeller.type 'humans': choose grader or queue"),
        (
            "labeller: {type: queue}",
            "labeller.path: the queue directory the web UI exports labels to is required",
        ),
    ],
)
def test_rlhf_sections_checked_at_load(tmp_path, section, needle):
    cfg = tmp_path / "rlhf.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'run'}\n{section}\n")
    assert_user_error(invoke("rlhf", cfg), f"{cfg}: {needle}")
    assert not (tmp_path / "run").exists()


def test_config_rft_lists_every_grpo_key():
    from reinforge.train.agent import AgentSettings
    from reinforge.train.distributed import DistributedSettings
    from reinforge.train.grpo import GRPOConfig, LoraSettings

    res = invoke("config", "rft")
    assert res.exit_code == 0, res.output
    listed = {line.split()[0] for line in res.stdout.splitlines()[3:]}
    sections = {"lora": LoraSettings, "agent": AgentSettings, "distributed": DistributedSettings}
    nested = {f"{name}.{k}" for name, cls in sections.items() for k in cls.model_fields}
    assert listed == set(GRPOConfig.model_fields) | nested
    line = next(li for li in res.stdout.splitlines() if li.startswith("group_size "))
    assert line.split()[1:3] == ["int", "8"] and "samples per prompt" in line


def test_config_rlhf_lists_the_stage_sections():
    res = invoke("config", "rlhf")
    keys = {line.split()[0] for line in res.stdout.splitlines()[3:]}
    assert {"ppo.steps", "rm.epochs", "sft.learning_rate", "labeller"} <= keys
    assert "ppo.output_dir" not in keys  # set by the loop, refused in the section


def test_serve_on_a_busy_port_fails_before_announcing(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = invoke("serve", "--port", port, "--data-dir", tmp_path / "data")
    assert_user_error(res, f"--port {port}: cannot listen there: already in use", "pass another --port")
    assert "reinforge serve:" not in res.stdout  # it printed "serving at" and then failed
    assert not (tmp_path / "data").exists()  # and nothing was set up


GRADER = '{"type": "string_check", "name": "s", "input": "{{sample.output_text}}", "reference": "x", "operation": "eq"}'


@pytest.fixture
def files(tmp_path):
    """A directory of good and bad inputs for the table below."""
    (tmp_path / "bad.yaml").write_text("steps: [\n")
    (tmp_path / "latin1.yaml").write_bytes(b"task: caf\xe9\n")
    (tmp_path / "typo.yaml").write_text("task: addition\nlerning_rate: 1.0e-5\n")
    (tmp_path / "ok.yaml").write_text("task: addition\n")
    (tmp_path / "nosuchtask.yaml").write_text(f"task: nosuchtask\noutput_dir: {tmp_path / 'run'}\n")
    (tmp_path / "g.json").write_text(GRADER)
    (tmp_path / "latin1.jsonl").write_bytes(b'{"item": {}, "sample": "caf\xe9"}\n')
    (tmp_path / "rows.jsonl").write_text('{"item": {}, "sample": "x"}\n')
    (tmp_path / "notes.txt").write_text("not a study\n")
    (tmp_path / "rft.jsonl").write_text('{"messages": [{"role": "user", "content": "1+1"}], "answer": "2"}\n')
    (tmp_path / "dir").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "args, needle",
    [
        (["rft", "{d}/none.yaml"], "none.yaml: config file not found"),
        (["rft", "{d}/dir"], "dir: not a file (a directory?)"),  # was IsADirectoryError, exit 1
        (["rft", "{d}/bad.yaml"], "bad.yaml:2: invalid YAML"),
        (["rft", "{d}/latin1.yaml"], "latin1.yaml: not UTF-8 text (byte 0xe9"),  # was UnicodeDecodeError
        (["rft", "{d}/typo.yaml"], "typo.yaml: lerning_rate: unknown key; did you mean learning_rate?"),
        (
            ["rft", "{d}/ok.yaml", "--set", "learning_rate=abc"],
            "--set learning_rate=abc: learning_rate: Input",
        ),
        (["rft", "{d}/nosuchtask.yaml"], "task 'nosuchtask': unknown built-in task"),
        # grade: every wrong input exits 2 like the other commands (three of these exited 1)
        (["grade", "--grader", "{d}/g.json", "--input", "{d}/latin1.jsonl"], "latin1.jsonl:1: not UTF-8"),
        (["grade", "--grader", "{d}/g.json", "--input", "{d}/dir"], "dir: not a file (a directory?)"),
        (
            ["grade", "--grader", "{d}/g.json", "--input", "{d}/rows.jsonl", "--output", "{d}/no/o.jsonl"],
            "--output",
        ),
        (["grade", "--grader", "{d}/dir", "--input", "{d}/rows.jsonl"], "dir: Is a directory"),
        (["tune", "ask", "{d}/notes.txt"], "notes.txt: not a study file"),  # was sqlite3.DatabaseError
        # a typo in a train study's inline GRPO config was blamed on "<config>"
        (
            ["tune", str(ROOT / "examples/tune/train.yaml"), "--set", "objective.base.lerning_rate=1"],
            "objective.base: lerning_rate: unknown key; did you mean learning_rate?",
        ),
        (["config", "rtf"], "config 'rtf': no such command; did you mean rft? (one of rft, sft"),
        (["config"], "config: name a command"),
    ],
)
def test_user_errors_are_one_line_exit_2(files, args, needle):
    assert_user_error(invoke(*[a.format(d=files) for a in args]), needle)


def test_offline_hub_id_fails_at_once(files, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = invoke(
        "eval", "--model", "someorg/no-such-model", "--data", files / "rft.jsonl", "--task", "addition"
    )
    assert_user_error(res, "model 'someorg/no-such-model': no such directory", "HF_HUB_OFFLINE is set")


def test_help_and_version():
    res = invoke("rft", "--help")
    assert res.exit_code == 0 and "<bool>" not in res.stdout and "--resume " in res.stdout  # a flag, no value
    assert "STUDY is the study's YAML config or its SQLite file" in " ".join(
        invoke("tune", "--help").stdout.split()
    )
    version = invoke("--version")
    assert version.exit_code == 0 and version.stdout.startswith("reinforge ")


def test_every_option_is_described():
    import click
    import typer

    def commands(group, prefix=""):
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                yield from commands(cmd, f"{prefix}{name} ")
            else:
                yield prefix + name, cmd

    bare = [
        f"{name} {param.opts[0]}"
        for name, cmd in commands(typer.main.get_command(app))
        for param in cmd.params
        if not param.help  # eval --max-tokens, --temperature and serve's options had none
    ]
    assert not bare


def test_a_missing_serve_extra_is_one_line_naming_it(tmp_path):
    """fastapi, uvicorn and sqlalchemy are the serve extra: without one, `reinforge serve` says so."""
    code = "import sys; sys.modules['uvicorn'] = None; from reinforge.cli import main; main()"
    args = [sys.executable, "-c", code, "serve", "--data-dir", str(tmp_path)]
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "needs the serve extra (uvicorn is not installed): pip install 'reinforge[serve]'" in out.stderr
