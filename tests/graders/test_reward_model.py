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


def test_a_trl_reward_model_grades(tmp_path):
    """A reward model trained by TRL's RewardTrainer (a few steps on a micro Llama) is a reward_model grader:
    its scores are the classifier's logits, and it prefers what it was trained to prefer."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from reinforge.graders.reward_model import RewardModelGrader

    base = micro_model(tmp_path / "base")
    prompt = [{"role": "user", "content": "say"}]
    rows = [{"prompt": prompt, "chosen": [{"role": "assistant", "content": "7777"}],
             "rejected": [{"role": "assistant", "content": "1111"}]}] * 32  # fmt: skip
    args = RewardConfig(str(tmp_path / "trl"), max_steps=15, per_device_train_batch_size=8, learning_rate=1e-2,
                        report_to="none", use_cpu=True, save_strategy="no", logging_strategy="no")  # fmt: skip
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    trainer = RewardTrainer(model, args, train_dataset=Dataset.from_list(rows),
                            processing_class=AutoTokenizer.from_pretrained(base))  # fmt: skip
    trainer.train()
    trainer.save_model(str(tmp_path / "trl_rm"))

    g = RewardModelGrader({"type": "reward_model", "model": str(tmp_path / "trl_rm")})
    item = {"messages": prompt}
    good, bad = g.grade_batch([(item, {"output_text": "7777"}), (item, {"output_text": "1111"})])
    assert good.reward > bad.reward
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "trl_rm")
    logits = hf(**g.model.encode([prompt] * 2, ["7777", "1111"])).logits[:, 0]
    assert [good.metadata["raw_score"], bad.metadata["raw_score"]] == pytest.approx(logits.tolist(), abs=1e-5)
    assert good.reward == pytest.approx(1 / (1 + math.exp(-good.metadata["raw_score"])))  # mu 0, sigma 1


def test_a_reward_model_in_the_older_format_still_loads(tmp_path):
    """backbone/ + head.safetensors + reward_model.json (what `reinforge rm` wrote before): the last
    token's hidden state through a head with a bias."""
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    from reinforge.models.reward_model import RewardModel

    base = micro_model(tmp_path / "base")
    old = tmp_path / "old"
    backbone = AutoModel.from_pretrained(base)
    backbone.save_pretrained(old / "backbone")
    AutoTokenizer.from_pretrained(base).save_pretrained(old)
    head = {"weight": torch.randn(1, 32), "bias": torch.tensor([0.5])}
    save_file(head, str(old / "head.safetensors"))
    (old / "reward_model.json").write_text('{"kind": "causal_lm", "max_length": 64, "mu": 0.1, "sigma": 2.0}')

    rm = RewardModel.load(old)
    enc = rm.encode([[{"role": "user", "content": "hi"}]], ["abc"])
    last = int(enc["attention_mask"][0].sum()) - 1
    hidden = backbone(**enc).last_hidden_state[0, last]
    assert rm.score([[{"role": "user", "content": "hi"}]], ["abc"]).item() == pytest.approx(
        (hidden @ head["weight"][0] + 0.5).item(), abs=1e-5
    )
    assert (rm.mu, rm.sigma, rm.kind) == (0.1, 2.0, "causal_lm")
