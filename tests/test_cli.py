"""The ``reinforge`` command: user errors are one line on stderr, exit 2, no traceback; `config` lists keys."""

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
    ],
)
def test_rlhf_sections_checked_at_load(tmp_path, section, needle):
    cfg = tmp_path / "rlhf.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'run'}\n{section}\n")
    assert_user_error(invoke("rlhf", cfg), f"{cfg}: {needle}")
    assert not (tmp_path / "run").exists()


def test_config_rft_lists_every_grpo_key():
    from reinforge.train.grpo import GRPOConfig, LoraSettings

    res = invoke("config", "rft")
    assert res.exit_code == 0, res.output
    listed = {line.split()[0] for line in res.stdout.splitlines()[3:]}
    assert listed == set(GRPOConfig.model_fields) | {f"lora.{k}" for k in LoraSettings.model_fields}
    line = next(li for li in res.stdout.splitlines() if li.startswith("group_size "))
    assert line.split()[1:3] == ["int", "8"] and "samples per prompt" in line


def test_config_rlhf_lists_the_stage_sections():
    res = invoke("config", "rlhf")
    keys = {line.split()[0] for line in res.stdout.splitlines()[3:]}
    assert {"ppo.steps", "rm.epochs", "sft.learning_rate", "labeller"} <= keys
    assert "ppo.output_dir" not in keys  # set by the loop, refused in the section


@pytest.mark.parametrize(
    "args, needle",
    [
        (["config", "rtf"], "config 'rtf': no such command; did you mean rft? (one of rft, sft"),
        (["config"], "config: name a command"),
    ],
)
def test_config_command_errors(args, needle):
    assert_user_error(invoke(*args), needle)


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
