"""PBT: exploited members continue from the donor's checkpoint (weights, optimiser, step), not from scratch."""

from __future__ import annotations

import json

import torch

from reinforge import tune
from reinforge.tune.pbt import example_train_fn, explore, pbt
from reinforge.tune.space import Space

SPACE = {"lr": tune.Float(1e-4, 0.3, log=True), "momentum": tune.Float(0.0, 0.9)}


def segments(run_dir):
    return [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]


def test_exploited_member_continues_from_donor_checkpoint(tmp_path):
    donor_weights = {}

    def train(params, run_dir, until):
        score = example_train_fn(params, run_dir, until)
        donor_weights[(run_dir.name, until)] = torch.load(run_dir / "ckpt.pt")["model"]["weight"].clone()
        return score

    initial = [
        {"lr": 1e-4, "momentum": 0.0},
        {"lr": 0.05, "momentum": 0.5},
        {"lr": 2e-4, "momentum": 0.0},
        {"lr": 0.03, "momentum": 0.3},
    ]
    res = pbt(
        train,
        SPACE,
        tmp_path,
        population=4,
        interval=5,
        total_steps=15,
        quantile=0.25,
        seed=0,
        initial=initial,
    )
    assert res["lineage"], "no exploit happened"
    for ex in res["lineage"]:
        recipient = tmp_path / f"member-{ex['member']}"
        segs = segments(recipient)
        # the segment right after the exploit starts at the donor's step, with the donor's weights
        after = [s for s in segs if s["start_step"] == ex["step"]][-1]
        w_donor = donor_weights[(f"member-{ex['donor']}", ex["step"])][0, 0].item()
        assert after["start_step"] == ex["step"] != 0
        assert after["weight0"] == w_donor
        state = torch.load(recipient / "ckpt.pt")
        assert state["step"] == 15  # the step counter continued to the total
    # the slow (lr=1e-4) member was replaced by a copy of a good one and ends far better than alone
    assert res["scores"][0] > -0.5


def test_pbt_beats_fixed_hyperparameters_on_the_toy_problem(tmp_path):
    initial = [
        {"lr": 1e-4, "momentum": 0.0},
        {"lr": 3e-4, "momentum": 0.0},
        {"lr": 0.05, "momentum": 0.5},
        {"lr": 1e-3, "momentum": 0.0},
    ]
    fixed = pbt(
        example_train_fn,
        SPACE,
        tmp_path / "fixed",
        population=4,
        interval=5,
        total_steps=20,
        quantile=0.0,
        initial=initial,
    )
    evolved = pbt(
        example_train_fn,
        SPACE,
        tmp_path / "pbt",
        population=4,
        interval=5,
        total_steps=20,
        quantile=0.25,
        initial=initial,
    )
    assert evolved["median_score"] > fixed["median_score"]


def test_explore_stays_in_space_and_study_records_segments(tmp_path):
    import random

    space = Space(SPACE)
    for _ in range(50):
        p = explore({"lr": 0.29, "momentum": 0.85}, space, random.Random(_), (0.5, 2.0), 0.2)
        assert 1e-4 <= p["lr"] <= 0.3 and 0 <= p["momentum"] <= 0.9
    res = pbt(
        example_train_fn, SPACE, tmp_path, population=2, interval=2, total_steps=4, quantile=0.5, seed=1
    )
    trials = res["study"].trials
    assert len(trials) == 4 and sorted({t.attrs["step"] for t in trials}) == [2, 4]
