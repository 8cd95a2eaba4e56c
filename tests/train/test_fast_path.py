"""The fast log-prob path (body forward, LM head on completion positions only, chunked) gives the same GRPO
loss and gradients as a plain reference: full-vocabulary logits over the whole padded batch, log_softmax, gather."""

from __future__ import annotations

import pytest
import torch

from reinforge.train.logprobs import grouped_token_logps, per_token_logps
from reinforge.train.losses import aggregate_loss, clipped_policy_loss, kl_k3
from tests.helpers import tiny_lm


def padded_batch(n: int = 6, p: int = 5, t: int = 4):
    """[left-padded prompt | right-padded completion] rows, as ``collect_rollout`` packs them."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 23, (n, p + t), generator=g)
    attn = torch.ones(n, p + t, dtype=torch.long)
    cmask = torch.ones(n, t, dtype=torch.long)
    for k in range(n):
        pad_left, short = k % 3, k % 2 + (k == 0)
        attn[k, :pad_left] = 0
        ids[k, :pad_left] = 0
        attn[k, p + t - short :] = 0
        ids[k, p + t - short :] = 0
        cmask[k, t - short :] = 0
    return ids, attn, cmask


def reference_logps(model, ids, attn, t: int, temperature: float) -> torch.Tensor:
    """Plain path: full logits for every position, log_softmax over the vocabulary, gather the next token."""
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits  # (N, L, V)
    logp = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1)[:, -t:]


def grpo_loss(logp, ref_logp, old, adv, cmask, loss_type):
    pg, _ = clipped_policy_loss(logp, old, adv)
    per_token = pg + 0.04 * kl_k3(logp, ref_logp) * torch.exp(logp - old)
    return aggregate_loss(per_token, cmask, loss_type, cmask.shape[1])


@pytest.mark.parametrize(
    "loss_type,temperature,chunk", [("grpo", 1.0, 4), ("dapo", 0.7, 64), ("dr_grpo", 1.0, 1)]
)
def test_fast_path_matches_full_logits_reference(loss_type, temperature, chunk, lm_head_logits):
    ids, attn, cmask = padded_batch()
    t = cmask.shape[1]
    policy, ref = tiny_lm(0), tiny_lm(1)
    adv = torch.linspace(-1.5, 1.5, ids.shape[0])
    with torch.no_grad():
        ref_logp = reference_logps(ref, ids, attn, t, temperature)
        old = reference_logps(policy, ids, attn, t, temperature) + 0.05  # ratios != 1 so clipping matters

    losses, grads = [], []
    for fast in (True, False):
        policy.zero_grad(set_to_none=True)
        if fast:
            logp = per_token_logps(policy, ids, attn, t, temperature, chunk)
            ref_fast = per_token_logps(ref, ids, attn, t, temperature, chunk).detach()
            torch.testing.assert_close(ref_fast * cmask, ref_logp * cmask, rtol=1e-5, atol=1e-5)
        else:
            logp = reference_logps(policy, ids, attn, t, temperature)
        loss = grpo_loss(logp, ref_logp, old, adv, cmask, loss_type)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in policy.parameters()])
    assert losses[0].abs() > 1e-4  # a non-trivial loss, so the comparison means something
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    for gf, gr in zip(*grads):
        torch.testing.assert_close(gf, gr, rtol=1e-4, atol=1e-6)


def grouped_batch(prompts: int = 3, group: int = 4, p: int = 5, t: int = 6):
    """Rows k*G..k*G+G-1 share prompt k (ragged, left-padded); completions of mixed lengths 1..t."""
    g = torch.Generator().manual_seed(2)
    n = prompts * group
    ids = torch.randint(3, 23, (n, p + t), generator=g)
    attn = torch.ones(n, p + t, dtype=torch.long)
    for k in range(prompts):
        rows = slice(k * group, (k + 1) * group)
        ids[rows, :p] = torch.randint(3, 23, (p,), generator=g)
        attn[rows, : k % 3] = 0
        ids[rows, : k % 3] = 0
    lengths = [1 + (k * 5) % t for k in range(n)]
    cmask = torch.zeros(n, t, dtype=torch.long)
    for k, length in enumerate(lengths):
        cmask[k, :length] = 1
        attn[k, p + length :] = 0
        ids[k, p + length :] = 0
    return ids, attn, cmask, torch.arange(n) // group


@pytest.mark.parametrize("buckets,shuffle", [(1, False), (2, False), (3, True), (12, True)])
def test_grouped_logps_match_full_forward(buckets, shuffle):
    """Shared prompts + length buckets: the same log-probs and gradients as one padded forward."""
    ids, attn, cmask, prompt_of = grouped_batch()
    rows = torch.randperm(ids.shape[0], generator=torch.Generator().manual_seed(3))[:8] if shuffle else None
    if rows is not None:  # a minibatch: rows out of order, groups split
        ids, attn, cmask, prompt_of = ids[rows], attn[rows], cmask[rows], prompt_of[rows]
    t = cmask.shape[1]
    model = tiny_lm(0)
    weights = torch.linspace(-1, 1, t)  # a loss that weighs every position differently

    outs, grads = [], []
    for grouped in (True, False):
        model.zero_grad(set_to_none=True)
        if grouped:
            logp = grouped_token_logps(model, ids, attn, cmask, prompt_of, 0.9, 4, buckets)
        else:
            logp = reference_logps(model, ids, attn, t, 0.9) * cmask
        (logp * weights).sum().backward()
        outs.append(logp.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert (outs[0][cmask == 0] == 0).all()
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_micro_batches_accumulate_the_same_update(loss_type):
    """``micro_batch_size`` only bounds memory: the same parameters and logged stats as one big batch."""
    import copy

    from reinforge.train.grpo import GRPOConfig, grpo_update
    from reinforge.train.rollout import Rollout

    ids, attn, cmask, _ = grouped_batch(prompts=3, group=4)
    t = cmask.shape[1]
    rewards = torch.linspace(0, 1, ids.shape[0]).view(3, 4) ** 2
    roll = Rollout(ids, attn, cmask, torch.zeros(cmask.shape), rewards, [], [], 0.0, 0.0)
    base = tiny_lm(0)
    ref = tiny_lm(1)
    results = []
    for micro in (None, 5):  # 5 does not divide the minibatch of 6: uneven last micro-batch
        cfg = GRPOConfig(
            task="addition",
            group_size=4,
            prompts_per_step=3,
            max_new_tokens=t,
            beta=0.04,
            loss_type=loss_type,
            inner_epochs=2,  # old log-probs differ from current ones in the second epoch: clipping is live
            num_minibatches=2,
            micro_batch_size=micro,
            learning_rate=0.05,
        )
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        stats = grpo_update(model, ref, opt, roll, cfg, step_seed=3)
        results.append((stats, [p.detach().clone() for p in model.parameters()]))
    (s_full, p_full), (s_micro, p_micro) = results
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(p_full, base.parameters()))  # it did move
    for a, b in zip(p_full, p_micro):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for k in s_full:
        assert s_full[k] == pytest.approx(s_micro[k], rel=1e-4, abs=1e-6), k


@pytest.fixture(params=["kept", "recomputed"])
def lm_head_logits(request, monkeypatch):
    """Both ways the LM head's logits meet the backward pass: kept by autograd (small vocabularies, as in
    these models) or recomputed (``ChosenTokenLogps``, large vocabularies)."""
    if request.param == "recomputed":
        monkeypatch.setattr("reinforge.train.logprobs.RECOMPUTE_MIN_VOCAB", 0)
    return request.param


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_packed_logps_match_full_forward(arch, shuffle, lm_head_logits):
    """The padding-free forward: the same log-probs and gradients as one padded forward, with prompts
    shared, ragged completions (lengths 1..t) and, shuffled, groups split across the batch."""
    from reinforge.models.packed import PackedBatch, supports
    from reinforge.train.logprobs import packed_token_logps

    ids, attn, cmask, prompt_of = grouped_batch()
    if shuffle:
        rows = torch.randperm(ids.shape[0], generator=torch.Generator().manual_seed(3))[:8]
        ids, attn, cmask, prompt_of = ids[rows], attn[rows], cmask[rows], prompt_of[rows]
    t = cmask.shape[1]
    model = tiny_lm(0, arch)
    assert supports(model)
    weights = torch.linspace(-1, 1, t)
    outs, grads = [], []
    for packed in (True, False):
        model.zero_grad(set_to_none=True)
        if packed:
            logp = packed_token_logps(model, PackedBatch.build(ids, attn, cmask, prompt_of), 0.9, 4)
        else:
            logp = reference_logps(model, ids, attn, t, 0.9) * cmask
        (logp * weights).sum().backward()
        outs.append(logp.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert (outs[0][cmask == 0] == 0).all() and (outs[0][cmask == 1] != 0).all()
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_packed_logps_with_nothing_to_feed():
    """Every completion one token long (no completion token is fed) and one empty: still the padded values."""
    from reinforge.models.packed import PackedBatch
    from reinforge.train.logprobs import packed_token_logps

    ids = torch.tensor([[0, 5, 6, 7, 9, 0], [0, 5, 6, 7, 10, 0], [8, 9, 10, 11, 0, 0]])
    attn = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    cmask = torch.tensor([[1, 0], [1, 0], [0, 0]])
    model = tiny_lm(0)
    logp = packed_token_logps(model, PackedBatch.build(ids, attn, cmask, torch.tensor([0, 0, 1])))
    torch.testing.assert_close(logp, reference_logps(model, ids, attn, 2, 1.0) * cmask, rtol=1e-5, atol=1e-5)
    assert logp[0, 0] != 0 and logp[2].abs().sum() == 0


@pytest.mark.parametrize("temperature,chunk", [(1.0, 3), (0.7, 64)])
def test_chosen_token_logps_gradients(temperature, chunk):
    """The LM-head log-prob function that recomputes logits in its backward pass: the same values and the
    same gradients for states, weight and bias as autograd through log_softmax over full logits."""
    from reinforge.train.logprobs import ChosenTokenLogps

    g = torch.Generator().manual_seed(0)
    h, w, b = (torch.randn(*shape, generator=g).requires_grad_() for shape in ((7, 5), (11, 5), (11,)))
    t = torch.randint(0, 11, (7,), generator=g)
    weights = torch.linspace(-1, 1, 7)  # a loss that weighs every row differently
    results = []
    for fused in (True, False):
        if fused:
            lp = ChosenTokenLogps.apply(h, w, b, t, temperature, chunk)
        else:
            lp = torch.log_softmax((h @ w.T + b) / temperature, -1).gather(-1, t[:, None]).squeeze(-1)
        (lp * weights).sum().backward()
        results.append([lp.detach()] + [x.grad.clone() for x in (h, w, b)])
        for x in (h, w, b):
            x.grad = None
    for a, r in zip(*results):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6)
