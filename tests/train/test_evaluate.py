"""``reinforge eval``: the pass@k samples use the temperature given, 0 (greedy) included."""

from __future__ import annotations

import json

import pytest

from reinforge.train.evaluate import eval_command
from tests.train.helpers_rlhf import micro_model, prompt_rows, write_jsonl

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
