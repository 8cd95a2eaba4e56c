"""DPO / IPO losses: hand-computed values, TRL's implementation on identical tensors, and a short run."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from reinforge.train.losses import dpo_loss, ipo_loss
from tests.helpers import micro_model


@pytest.mark.parametrize(
    "pc, pr, rc, rr, beta, expected",
    [
        (0.0, 0.0, 0.0, 0.0, 0.1, math.log(2)),  # no preference yet: -log sigmoid(0)
        (-1.0, -3.0, -2.0, -2.0, 0.5, -math.log(1 / (1 + math.exp(-1.0)))),  # logits 0.5 * (1 - -1) = 1
        (-3.0, -1.0, -2.0, -2.0, 0.5, -math.log(1 / (1 + math.exp(1.0)))),  # wrong way round: logits -1
    ],
)
def test_dpo_loss_table(pc, pr, rc, rr, beta, expected):
    t = lambda x: torch.tensor([x])  # noqa: E731
    loss, c_rew, r_rew = dpo_loss(t(pc), t(pr), t(rc), t(rr), beta)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert c_rew.item() == pytest.approx(beta * (pc - rc)) and r_rew.item() == pytest.approx(beta * (pr - rr))


def test_conservative_dpo_by_hand():
    # logits = 1: cDPO = 0.9 * -log sigmoid(1) + 0.1 * -log sigmoid(-1)
    t = lambda x: torch.tensor([x])  # noqa: E731
    loss, _, _ = dpo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), 0.5, label_smoothing=0.1)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert loss.item() == pytest.approx(-0.9 * math.log(sig(1.0)) - 0.1 * math.log(sig(-1.0)), abs=1e-6)


def test_ipo_loss_by_hand():
    # h = (chosen ratio / 2 tokens) - (rejected ratio / 4 tokens) = 1/2 - (-2)/4 = 1; target 1/(2*0.25) = 2 -> (1-2)^2
    loss, _, _ = ipo_loss(
        torch.tensor([0.0]),
        torch.tensor([-3.0]),
        torch.tensor([-1.0]),
        torch.tensor([-1.0]),
        beta=0.25,
        chosen_lengths=torch.tensor([2.0]),
        rejected_lengths=torch.tensor([4.0]),
    )
    assert loss.item() == pytest.approx(1.0)


def trl_loss(tok_c, tok_r, ref_c, ref_r, beta, loss_type, label_smoothing=0.0):
    """TRL 1.16's ``DPOTrainer._compute_loss`` on given per-token log-probs (a fake trainer around it)."""
    from trl.trainer.dpo_trainer import DPOTrainer

    B, L = tok_c.shape
    log_probs = torch.cat([tok_c, tok_r])  # (2B, L): zeros where the completion mask is 0
    completion_mask = (log_probs != 0).long()
    outputs = SimpleNamespace(
        log_probs=log_probs,
        entropy=torch.zeros(2 * B, L),
        mean_logits=torch.zeros(2 * B, L),
        is_top1=torch.zeros(2 * B, L, dtype=torch.bool),
    )
    model = SimpleNamespace(training=True)
    fake = SimpleNamespace(
        model=model,
        accelerator=SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=label_smoothing,
        use_weighting=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.ones(2 * B, L, dtype=torch.long),
        "attention_mask": torch.ones(2 * B, L),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_c,
        "ref_rejected_logps": ref_r,
    }
    return DPOTrainer._compute_loss(fake, lambda **kw: outputs, inputs, return_outputs=False)


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_and_ipo_match_trl(beta):
    pytest.importorskip("trl")
    g = torch.Generator().manual_seed(0)
    B, L = 6, 7
    mask_c = torch.ones(B, L)
    mask_c[:, 0] = 0  # the first position is the prompt
    mask_c[0, 5:] = 0  # a short chosen response
    mask_r = torch.ones(B, L)
    mask_r[:, 0] = 0
    mask_r[2, 3:] = 0
    tok_c = -torch.rand(B, L, generator=g) * 3 * mask_c - 0.01 * mask_c  # strictly negative on the mask
    tok_r = -torch.rand(B, L, generator=g) * 3 * mask_r - 0.01 * mask_r
    ref_c, ref_r = -torch.rand(B, generator=g) * 10, -torch.rand(B, generator=g) * 10
    ours, _, _ = dpo_loss(tok_c.sum(-1), tok_r.sum(-1), ref_c, ref_r, beta)
    assert ours.item() == pytest.approx(
        trl_loss(tok_c, tok_r, ref_c, ref_r, beta, "sigmoid").item(), rel=1e-5
    )
    ours_ipo, _, _ = ipo_loss(
        tok_c.sum(-1), tok_r.sum(-1), ref_c, ref_r, beta, mask_c.sum(-1), mask_r.sum(-1)
    )
    assert ours_ipo.item() == pytest.approx(
        trl_loss(tok_c, tok_r, ref_c, ref_r, beta, "ipo").item(), rel=1e-5
    )


def test_short_dpo_run_prefers_chosen(tmp_path):
    from reinforge.data.preferences import PreferencePair
    from reinforge.train.dpo import DPOConfig, train_dpo

    model = micro_model(tmp_path / "m")
    prompt = lambda i: [{"role": "user", "content": f"q{i}"}]  # noqa: E731
    pairs = [PreferencePair(prompt(i), "yes" * (1 + i % 2), "no" * (1 + i % 3)) for i in range(24)]
    cfg = DPOConfig(
        model=str(model),
        output_dir=str(tmp_path / "run"),
        beta=0.1,
        steps=15,
        batch_size=8,
        learning_rate=1e-2,
        eval_interval=0,
        save_interval=0,
        progress=False,
        device="cpu",
    )
    summary = train_dpo(cfg, train_pairs=pairs[:16], val_pairs=pairs[16:])
    assert summary["val_accuracy"] > 0.9 and summary["val_accuracy_before"] < 0.9
    assert (tmp_path / "run" / "final" / "config.json").exists()
