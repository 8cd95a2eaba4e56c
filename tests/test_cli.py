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
    ],
)
def test_rlhf_sections_checked_at_load(tmp_path, section, needle):
    cfg = tmp_path / "rlhf.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'run'}\n{section}\n")
    assert_user_error(invoke("rlhf", cfg), f"{cfg}: {needle}")
    assert not (tmp_path / "run").exists()
