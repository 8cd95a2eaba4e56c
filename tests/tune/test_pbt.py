"""PBT: exploited members continue from the donor's checkpoint (weights, optimiser, step), not from scratch."""

from __future__ import annotations

import json

import pytest
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


def test_explore_keeps_an_integer_on_its_step_grid():
    import random

    space = Space({"group_size": tune.Int(4, 12, step=4)})
    seen = {
        explore({"group_size": v}, space, random.Random(s), (0.8, 1.25), 0.0)["group_size"]
        for v in (4, 8, 12)
        for s in range(30)
    }
    # the old int(round(v)) gave 5, 6, 10 (off the grid); a perturbation moves at least one step
    assert seen == {4, 8, 12}


def test_validate_refuses_an_integer_off_its_step():
    from reinforge.errors import ConfigError

    space = Space({"group_size": tune.Int(4, 12, step=4)})
    assert space.validate({"group_size": 8}) == {"group_size": 8}
    with pytest.raises(ConfigError, match="group_size=6"):
        space.validate({"group_size": 6})  # in range, not on the step grid


def param_specs():
    from hypothesis import strategies as st

    def ints(draw_low, span, step):
        return tune.Int(draw_low, draw_low + span, step=step)

    linear_int = st.builds(ints, st.integers(-20, 20), st.integers(0, 40), st.integers(1, 7))
    log_int = st.builds(
        lambda low, span: tune.Int(low, low + span, log=True), st.integers(1, 50), st.integers(0, 500)
    )
    floats = st.builds(
        lambda low, span, log: tune.Float(low, low + span, log=log),
        st.floats(1e-6, 10.0),
        st.floats(0.0, 100.0),
        st.booleans(),
    )
    choices = st.builds(
        tune.Choice, st.lists(st.sampled_from(["a", "b", 3, 0.5, None]), min_size=1, max_size=4)
    )
    return st.dictionaries(
        st.sampled_from(["p0", "p1", "p2", "p3"]), st.one_of(linear_int, log_int, floats, choices), min_size=1
    )


def test_explored_values_always_lie_in_the_declared_space():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=200, deadline=None)
    @given(
        param_specs(),
        st.integers(0, 2**32 - 1),
        st.sampled_from([(0.8, 1.25), (0.5, 2.0), (0.9,), (3.0, 0.1)]),
        st.floats(0.0, 1.0),
    )
    def check(params, seed, factors, resample_prob):
        import random

        space = Space(params)
        rng = random.Random(seed)
        config = space.sample(rng)
        for _ in range(8):  # a chain of explores, as a member goes through several exploits
            config = explore(config, space, rng, factors, resample_prob)
            assert space.validate(config) == config  # range, step, log bounds, choices
            for name, p in space.items():
                if isinstance(p, tune.Int):
                    assert type(config[name]) is int

    check()


def test_members_train_in_their_own_directories_and_a_second_run_is_refused(tmp_path):

    from reinforge.errors import ConfigError

    initial = [{"lr": 1e-4, "momentum": 0.0}, {"lr": 0.01, "momentum": 0.0}, {"lr": 0.05, "momentum": 0.5}]
    res = pbt(
        example_train_fn,
        SPACE,
        tmp_path,
        population=3,
        interval=2,
        total_steps=4,
        quantile=0.0,
        initial=initial,
    )
    assert sorted(p.name for p in tmp_path.glob("member-*")) == ["member-0", "member-1", "member-2"]
    assert len(set(res["scores"])) == 3  # three learning rates, three results
    for i in range(3):  # each member ran its own steps from 0, never another member's checkpoint
        assert [s["start_step"] for s in segments(tmp_path / f"member-{i}")] == [0, 2]
    with pytest.raises(ConfigError, match="earlier PBT run left member-0, member-1, member-2"):
        pbt(example_train_fn, SPACE, tmp_path, population=3, interval=2, total_steps=4, initial=initial)
