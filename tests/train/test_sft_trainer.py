"""The SFT trainer: loss on assistant tokens falls, packing packs, resume continues, bad data fails."""

from __future__ import annotations

import json

import pytest

from reinforge.errors import DataError
from tests.helpers import chat_rows, micro_model, write_jsonl


def test_pack_examples_keeps_examples_whole():
    from reinforge.train.sft_trainer import pack_examples

    ex = [([1] * 4, [1] * 4), ([2] * 3, [2] * 3), ([3] * 5, [3] * 5), ([4] * 2, [4] * 2)]
    rows = pack_examples(ex, max_length=8, seed=0)
    assert all(len(ids) <= 8 for ids, _ in rows) and sum(len(ids) for ids, _ in rows) == 14
    assert len(rows) < len(ex)  # fewer rows than examples: something was packed
    for ids, _ in rows:  # every example lies whole in one row: token v appears len(example v) times
        assert all(ids.count(v) == len(ex[v - 1][0]) for v in set(ids))


@pytest.mark.parametrize("packing", [False, True])
def test_sft_loss_falls(tmp_path, packing):
    from reinforge.train.sft_trainer import SFTConfig, train_sft

    model = micro_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(60))
    cfg = SFTConfig(
        model=str(model),
        train_file=str(data),
        output_dir=str(tmp_path / "run"),
        steps=25,
        batch_size=8,
        learning_rate=1e-2,
        packing=packing,
        max_length=64,
        validation_split=0.2,
        eval_interval=0,
        save_interval=0,
        progress=False,
        device="cpu",
    )
    s = train_sft(cfg)
    assert s["final_val_loss"] < 0.6 * s["baseline_val_loss"]
    assert (s["rows_per_epoch"] < s["train_examples"]) is packing


def test_sft_resume_and_bad_rows(tmp_path):
    from reinforge.train.sft_trainer import SFTConfig, train_sft

    model = micro_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(20))
    base = dict(
        model=str(model),
        train_file=str(data),
        output_dir=str(tmp_path / "run"),
        steps=4,
        batch_size=4,
        save_interval=2,
        eval_interval=0,
        progress=False,
        device="cpu",
        validation_split=None,
    )
    calls = {"n": 0}
    first = train_sft(
        SFTConfig(**base), should_stop=lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] == 2
    )
    assert first["status"] == "stopped"
    second = train_sft(SFTConfig(**base), resume=True)
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert second["status"] == "succeeded" and steps == [1, 2, 3, 4]
    no_assistant = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(DataError, match="row 1 has no assistant turn"):
        train_sft(SFTConfig(**{**base, "train_file": str(no_assistant), "output_dir": str(tmp_path / "r2")}))
