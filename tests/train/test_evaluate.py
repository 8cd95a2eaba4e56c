"""``reinforge eval``: the pass@k samples use the temperature given, 0 (greedy) included."""

from __future__ import annotations

import json

import pytest

from reinforge.train.evaluate import eval_command
from tests.helpers import micro_model, prompt_rows, write_jsonl

FUZZY = {
    "type": "text_similarity",
    "name": "fuzzy",
    "input": "{{sample.output_text}}",
    "reference": "say {{item.k}}",
    "evaluation_metric": "fuzzy_match",
}


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_eval_samples_at_the_temperature_given(tmp_path, temperature):
    """At temperature 0 every sample is the greedy output, so the samples' mean reward is the greedy
    one (``--temperature 0`` sampled at 1.0); at 1.0 a random micro model's samples differ from it."""
    model = micro_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "rows.jsonl", prompt_rows(6))
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps(FUZZY))
    res = eval_command(str(model), data, str(grader), None, 4, temperature, 8, None)
    assert (res["sample_reward_mean"] == pytest.approx(res["reward_mean"])) is (temperature == 0.0)


def test_eval_refuses_a_template_typo_before_loading_the_model(tmp_path):
    """``reinforge eval`` checks the grader's templates against the first row: exit 2, one line naming the
    row (file:line), the grader, the template and the missing field; the model is never loaded."""
    import subprocess
    import sys

    data = write_jsonl(tmp_path / "rows.jsonl", prompt_rows(3))
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps({**FUZZY, "reference": "say {{item.kk}}"}))
    args = ["eval", "--model", str(tmp_path / "no-such-model"), "--data", str(data), "--grader", str(grader)]
    out = subprocess.run(
        [sys.executable, "-m", "reinforge.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{data}:1: grader 'fuzzy' grader.reference: '{{{{item.kk}}}}'" in out.stderr
    assert "no field 'kk'" in out.stderr


def test_eval_shows_a_progress_bar_over_the_rows(tmp_path, capsys):
    model = micro_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "rows.jsonl", prompt_rows(3))
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps(FUZZY))
    res = eval_command(str(model), data, str(grader), None, 1, 0.0, 4, None)
    err = capsys.readouterr().err
    assert "eval" in err and "3/3" in err and f"reward {res['reward_mean']:.3f}" in err
