"""Checkpoints and final/ are written to a temp dir and renamed: a failed write leaves the old one whole."""

from __future__ import annotations

import errno

import pytest
import torch

from reinforge.errors import ReinforgeError
from reinforge.train import checkpoint as ck
from tests.train.test_fast_path import tiny_lm


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
