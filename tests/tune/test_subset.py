"""``Subset``: the unit mapping, the Optuna encoding, evolution's operators, dotted groups and errors."""

from __future__ import annotations

import itertools
import random

import pytest
import yaml
from typer.testing import CliRunner

from reinforge import tune
from reinforge.cli import app
from reinforge.errors import ConfigError

TOOLS = ["search", "calc", "wiki", "clock", "mail"]


def allowed(options: list, lo: int, hi: int) -> list[list]:
    return [list(c) for k in range(lo, hi + 1) for c in itertools.combinations(options, k)]


@pytest.mark.parametrize("lo,hi", [(0, 5), (1, 2), (2, 2), (5, 5), (0, 0)])
def test_unit_mapping_ranks_every_allowed_subset_once(lo, hi):
    s = tune.Subset(TOOLS, min_size=lo, max_size=hi)
    want = allowed(TOOLS, lo, hi)
    assert s.count == len(want)
    assert sorted(map(tuple, s.grid(3))) == sorted(map(tuple, want))  # grid: all of them, no repeats
    for v in want:
        assert s.from_unit(s.to_unit(v)) == v  # to_unit is the middle of v's cell
    draws = [s.sample(random.Random(i)) for i in range(200)]
    assert all(s.contains(d) for d in draws)


def test_optuna_encoding_round_trips_and_repairs_within_bounds():
    s = tune.Subset(TOOLS, min_size=1, max_size=2)
    for v in allowed(TOOLS, 1, 2):
        bits = s.encode("tools", v)
        assert list(bits) == [f"tools[{t}]" for t in TOOLS]
        assert s.decode(bits.values()) == v
    for bits in itertools.product([False, True], repeat=len(TOOLS)):  # out-of-bounds draws are repaired
        out = s.decode(bits)
        assert s.contains(out) and out == s.decode(bits)  # the same booleans, the same subset
    # the repair favours no option: over all 5-bit draws, each option is kept about equally often
    kept = [t for bits in itertools.product([False, True], repeat=5) for t in s.decode(bits)]
    counts = [kept.count(t) for t in TOOLS]
    assert max(counts) - min(counts) <= 6


def test_mutate_and_cross_stay_within_bounds_and_use_both_parents():
    s = tune.Subset(TOOLS, min_size=1, max_size=3)
    rng = random.Random(0)
    a, b = ["search", "calc"], ["wiki", "mail"]
    kids = [s.cross(a, b, rng) for _ in range(100)]
    assert all(s.contains(k) for k in kids)
    assert any(set(k) & set(a) and set(k) & set(b) for k in kids)  # options of both parents mixed
    muts = [s.mutate(a, rng) for _ in range(100)]
    assert all(s.contains(m) and m != a for m in muts)
    assert {len(m) for m in muts} == {1, 2, 3}  # removes, swaps and adds
    assert s.mutate(["search", "calc", "wiki"], rng) != ["search", "calc", "wiki"]  # full: swap or remove


@pytest.mark.parametrize(
    "spec,says",
    [
        ({"type": "subset", "options": TOOLS, "min_size": 3, "max_size": 2}, "min_size 3, max_size 2"),
        ({"type": "subset", "options": TOOLS, "max_size": 6}, "max_size <= 5"),  # more than there are
        ({"type": "subset", "options": ["a", "a"]}, "each option must appear once"),
        ({"type": "subset", "options": []}, "at least one option"),
    ],
)
def test_bad_subset_names_the_key_the_rule_and_the_fix(spec, says):
    with pytest.raises(ConfigError) as e:
        tune.Space.from_dict({"tools": spec})
    assert str(e.value).startswith("space.tools: ") and says in str(e.value)


def test_unknown_option_names_the_key_and_the_fix():
    space = tune.Space({"tools": tune.Subset(TOOLS)})
    with pytest.raises(ConfigError, match=r"params.tools: \['web'\] not among the options .* add them"):
        space.validate({"tools": ["calc", "web"]})
    with pytest.raises(ConfigError, match=r"space.desc.when.tools: 'web' is not among tools's options"):
        tune.Space({"tools": tune.Subset(TOOLS), "desc": tune.Text(["x"], when={"tools": "web"})})


def test_when_on_a_subset_means_the_option_is_chosen():
    space = tune.Space(
        {"tools": tune.Subset(TOOLS), "calc_desc": tune.Text(["Adds."], when={"tools": "calc"})}
    )
    assert space.active_names({"tools": ["calc", "wiki"]}) == ["tools", "calc_desc"]
    assert space.active_names({"tools": ["wiki"]}) == ["tools"]


def test_dotted_names_reach_the_objective_nested():
    seen = []
    space = {"agents.planner.prompt": tune.Text(["Plan."]), "agents.planner.tools": tune.Subset(TOOLS, 1, 2)}
    study = tune.run(lambda p: seen.append(p) or 0.0, space, sampler="random", n_trials=2)
    assert set(seen[0]) == {"agents"} and set(seen[0]["agents"]["planner"]) == {"prompt", "tools"}
    assert seen[0]["agents.planner.prompt"] == "Plan."  # the flat name still answers
    assert set(study.trials[0].params) == set(space)  # storage keeps the dotted names
    with pytest.raises(ConfigError, match="'agents' is a parameter, so it cannot also be a group"):
        tune.Space({"agents": tune.Int(0, 1), "agents.planner.prompt": tune.Text(["Plan."])})


def test_tune_config_with_min_size_above_max_size_is_one_line_naming_the_file(tmp_path):
    cfg = tmp_path / "study.yaml"
    space = {"tools": {"type": "subset", "options": TOOLS, "min_size": 4, "max_size": 1}}
    cfg.write_text(yaml.safe_dump({"objective": {"type": "python", "function": "m:f"}, "space": space}))
    r = CliRunner().invoke(app, ["tune", str(cfg), "--set", f"output_dir={tmp_path / 'out'}"])
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert (
        str(cfg) in line and "tools" in line and "min_size 4, max_size 1" in line and "lower min_size" in line
    )
