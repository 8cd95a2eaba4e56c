"""Checkpoints and final/ are written to a temp dir and renamed: a failed write leaves the old one whole;
every trainer resumes exactly, and with the current config's learning rate and weight decay."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

from reinforge.errors import ReinforgeError
from reinforge.train import checkpoint as ck
from tests.helpers import (
    chat_rows,
    digit_fraction,
    micro_model,
    prompt_rows,
    tiny_lm,
    word_rankings,
    write_jsonl,
)


def test_disk_full_keeps_the_previous_checkpoint_and_final(tmp_path, monkeypatch):
    model = tiny_lm(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = ck.save_checkpoint(tmp_path, 1, model, None, opt, None, {"seconds": 1.5})
    final = ck.save_final(tmp_path, model, None)
    before = {p.name: p.read_bytes() for p in final.iterdir()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "save_pretrained_model", full)
    with pytest.raises(
        ReinforgeError, match=r"step-1: could not write checkpoint \(No space left on device\)"
    ):
        ck.save_checkpoint(tmp_path, 1, model, None, opt, None, {})
    with pytest.raises(ReinforgeError, match=r"final: could not write the final model \(No space left"):
        ck.save_final(tmp_path, model, None)
    assert ck.elapsed_seconds(first) == 1.5  # the old checkpoint is whole
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))  # no half-written leftovers


# ------------------------------------------------------------------ resume contract, for every trainer


def _grpo(model, data, out, **kw):
    from reinforge.train.grpo import GRPOConfig, train_grpo

    cfg = GRPOConfig(model=str(model), train_file=str(data / "prompts.jsonl"), output_dir=str(out), **kw)
    return lambda **run: train_grpo(cfg, reward_fn=digit_fraction, **run)


def _sft(model, data, out, **kw):
    from reinforge.train.sft_trainer import SFTConfig, train_sft

    cfg = SFTConfig(
        model=str(model),
        train_file=str(data / "chat.jsonl"),
        validation_split=None,
        output_dir=str(out),
        **kw,
    )
    return lambda **run: train_sft(cfg, **run)


def _rm(model, data, out, **kw):
    from reinforge.train.reward import RMConfig, train_reward_model

    cfg = RMConfig(model=str(model), output_dir=str(out), **kw)
    return lambda **run: train_reward_model(cfg, train_rows=word_rankings(16), **run)


def _ppo(model, data, out, **kw):
    from reinforge.train.ppo import PPOConfig, train_ppo

    cfg = PPOConfig(
        model=str(model), train_file=str(data / "prompts.jsonl"), output_dir=str(out), critic="separate", **kw
    )
    return lambda **run: train_ppo(cfg, reward_fn=digit_fraction, **run)


def _dpo(model, data, out, **kw):
    from reinforge.data.preferences import PreferencePair
    from reinforge.train.dpo import DPOConfig, train_dpo

    prompt = lambda i: [{"role": "user", "content": f"q{i}"}]  # noqa: E731
    pairs = [PreferencePair(prompt(i), "yes" * (1 + i % 2), "no" * (1 + i % 3)) for i in range(16)]
    cfg = DPOConfig(model=str(model), output_dir=str(out), **kw)
    return lambda **run: train_dpo(cfg, train_pairs=pairs, **run)


TRAINERS = {
    # each: a small run of 4 steps on a micro Llama with no evaluation; settings per algorithm
    "grpo": (_grpo, {"prompts_per_step": 4, "group_size": 2, "max_new_tokens": 3, "eval_interval": 0}),
    "sft": (_sft, {"batch_size": 4}),
    "rm": (_rm, {"batch_size": 4}),
    "ppo": (_ppo, {"prompts_per_step": 4, "num_minibatches": 2, "max_new_tokens": 3, "kl_target": 1.0}),
    "dpo": (_dpo, {"batch_size": 4}),
}


@pytest.fixture(scope="module")
def resume_inputs(tmp_path_factory):
    """A micro Llama and the data files every trainer of the contract test reads."""
    root = tmp_path_factory.mktemp("resume")
    write_jsonl(root / "prompts.jsonl", prompt_rows(16))
    write_jsonl(root / "chat.jsonl", chat_rows(16))
    return micro_model(root / "model"), root


class OptimizerSettings:
    """The (lr, weight_decay) pairs of every param group at each ``optimizer.step()``, per train step.

    Uses torch's global optimizer pre-step hook, so it sees what the optimizer really applies."""

    def __init__(self):
        self.per_step: dict[int, list[tuple[float, float]]] = {}
        self._now: set[tuple[float, float]] = set()

    def pre_step(self, optimizer, args, kwargs):
        self._now |= {(g["lr"], g["weight_decay"]) for g in optimizer.param_groups}

    def on_step(self, rec: dict) -> None:
        if rec["kind"] == "train":
            self.per_step[rec["step"]], self._now = sorted(self._now), set()


@pytest.fixture
def optimizer_settings():
    seen = OptimizerSettings()
    handle = register_optimizer_step_pre_hook(seen.pre_step)
    yield seen
    handle.remove()


def _stop_after(n: int):
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == n

    return stop


def _train_records(run_dir: Path) -> list[dict]:
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in recs if r["kind"] == "train"]


def _final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted((run_dir / "final").rglob("*.safetensors")):
        out.update({f"{f.relative_to(run_dir)}:{k}": v for k, v in load_file(str(f)).items()})
    for f in sorted((run_dir / "final").rglob("*.pt")):
        out.update({f"{f.relative_to(run_dir)}:{k}": v for k, v in torch.load(f).items()})
    return out


@pytest.mark.parametrize("algo", sorted(TRAINERS))
def test_resume_trains_as_uninterrupted_and_applies_the_new_config(
    algo, resume_inputs, optimizer_settings, tmp_path
):
    """Stopped after 2 of 4 steps, then resumed: unchanged, it trains exactly as the uninterrupted run;
    with a new learning rate and weight decay (``--resume --set``, a PBT exploit), the optimizer applies
    the new config's schedule and weight decay from the first resumed step (it kept the old ones)."""
    make, settings = TRAINERS[algo]
    model, data = resume_inputs
    common = {**settings, "steps": 4, "lr_schedule": "linear", "warmup_steps": 0, "save_interval": 0}
    common.update(progress=False, device="cpu")
    old = {"learning_rate": 1e-3, "weight_decay": 0.0}
    seen = optimizer_settings

    make(model, data, tmp_path / "whole", **common, **old)(on_step=seen.on_step)
    whole = dict(seen.per_step)
    first = make(model, data, tmp_path / "cut", **common, **old)(
        on_step=seen.on_step, should_stop=_stop_after(2)
    )
    assert first["status"] == "stopped"
    shutil.copytree(tmp_path / "cut", tmp_path / "changed")
    make(model, data, tmp_path / "cut", **common, **old)(on_step=seen.on_step, resume=True)
    assert seen.per_step == whole == {s: [(1e-3 * (1 - (s - 1) / 4), 0.0)] for s in (1, 2, 3, 4)}
    assert _train_records(tmp_path / "cut") == _train_records(tmp_path / "whole")
    a, b = _final_tensors(tmp_path / "whole"), _final_tensors(tmp_path / "cut")
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    seen.per_step.clear()
    new = {"learning_rate": 1e-4, "weight_decay": 0.1}
    make(model, data, tmp_path / "changed", **common, **new)(on_step=seen.on_step, resume=True)
    assert seen.per_step == {3: [(1e-4 * 0.5, 0.1)], 4: [(1e-4 * 0.25, 0.1)]}
    assert [r["lr"] for r in _train_records(tmp_path / "changed")][2:] == [1e-4 * 0.25, 0.0]
