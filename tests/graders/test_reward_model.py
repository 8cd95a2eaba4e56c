"""The ``reward_model`` grader: built from a spec, batched, calibrated to 0..1, errors recorded not raised."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import micro_model


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from reinforge.models.reward_model import RewardModel

    tmp = tmp_path_factory.mktemp("rm")
    rm = RewardModel.from_backbone(str(micro_model(tmp / "base")))
    torch.nn.init.normal_(rm.head.weight, std=1.0)
    rm.mu, rm.sigma = 0.25, 2.0
    rm.save_pretrained(tmp / "rm")
    return tmp / "rm"


def test_grader_scores_are_calibrated_raw_scores(rm_dir):
    from reinforge.graders.reward_model import RewardModelGrader
    from reinforge.models.reward_model import RewardModel

    g = RewardModelGrader({"type": "reward_model", "name": "rm", "model": str(rm_dir)})
    items = [{"messages": [{"role": "user", "content": "hi"}]}, {"prompt": "hello"}]
    grades = g.grade_batch([(items[0], {"output_text": "abc"}), (items[1], {"output_text": "xyz!"})])
    rm = RewardModel.load(rm_dir)
    raw = rm.score(
        [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "hello"}]], ["abc", "xyz!"]
    )
    for grade, r in zip(grades, raw.tolist()):
        assert grade.ok and grade.metadata["raw_score"] == pytest.approx(r, abs=1e-5)
        assert grade.reward == pytest.approx(
            1 / (1 + math.exp(-(r - 0.25) / 2.0)), abs=1e-5
        )  # sigmoid((r-mu)/sigma)
    std = RewardModelGrader({"type": "reward_model", "model": str(rm_dir), "calibration": "standard"})
    assert std.grade(items[0], {"output_text": "abc"}).reward == pytest.approx(
        (raw[0].item() - 0.25) / 2.0, abs=1e-5
    )


def test_grader_templates_and_errors(rm_dir):
    from reinforge.graders.reward_model import RewardModelGrader

    g = RewardModelGrader(
        {
            "type": "reward_model",
            "model": str(rm_dir),
            "input": "{{item.answer}}",
            "prompt": "{{item.question}}",
        }
    )
    ok, bad = g.grade_batch(
        [({"question": "q", "answer": "a"}, {"output_text": ""}), ({"question": "q"}, {})]
    )
    assert ok.ok and 0.0 < ok.reward < 1.0
    assert not bad.ok and bad.reward == 0.0 and bad.errors == {"invalid_variable_error": True}
    with pytest.raises(ValueError, match="'model'"):
        RewardModelGrader({"type": "reward_model"})


def test_registry_builds_reward_model_grader(rm_dir):
    from reinforge.graders import from_spec

    g = from_spec({"type": "reward_model", "name": "rm", "model": str(rm_dir)})
    assert 0.0 < g.grade({"prompt": "x"}, {"output_text": "y"}).reward < 1.0
