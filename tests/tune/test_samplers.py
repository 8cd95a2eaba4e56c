"""Contract tests: every sampler behind the ask/tell protocol, on cheap objectives."""

from __future__ import annotations

import itertools
import random

import pytest

from reinforge import tune
from reinforge.tune.evolution import LLMMutator, RuleMutator
from reinforge.tune.samplers import SearchExhausted

ALL = ["grid", "random", "quasirandom", "tpe", "gp", "cmaes", "nsga2", "bayes", "evolution"]
MULTI = ["random", "quasirandom", "tpe", "nsga2", "evolution", "grid"]

SPACE = {
    "x": tune.Float(-3.0, 3.0),
    "lr": tune.Float(1e-4, 1e-1, log=True),
    "n": tune.Int(0, 8, step=2),
    "kind": tune.Choice(["a", "b"]),
    "alpha": tune.Float(0.0, 1.0, when={"kind": "b"}),  # conditional
    "flag": tune.Bool(),
}


def thin_grid(sampler: str, points: int = 2) -> str | dict:
    """The sampler's spec; a grid with ``points`` values per continuous parameter (the trials suffice)."""
    return {"name": sampler, "points": points} if sampler == "grid" else sampler


def bowl(p: dict) -> float:
    """Minimum 0 at x=1, n=4, kind=a, flag=True; lr and alpha are noise-free extras."""
    return (
        (p["x"] - 1) ** 2
        + 0.1 * abs(p["n"] - 4)
        + (0.5 if p["kind"] == "b" else 0)
        + (0 if p["flag"] else 0.3)
    )


@pytest.mark.parametrize("sampler", ALL)
def test_params_respect_space_and_conditions(sampler):
    study = tune.run(
        bowl,
        SPACE,
        sampler=thin_grid(sampler),
        n_trials=12,
        seed=1,
    )
    assert len(study.trials) == 12
    for t in study.trials:
        assert t.state == "complete"
        assert -3 <= t.params["x"] <= 3 and 1e-4 <= t.params["lr"] <= 1e-1
        assert t.params["n"] in (0, 2, 4, 6, 8)
        assert ("alpha" in t.params) == (t.params["kind"] == "b")  # inactive parameters are left out


@pytest.mark.parametrize("sampler", [s for s in ALL if s not in ("grid", "bayes")])  # bayes = gp here
def test_finds_a_good_point(sampler):
    # 1-D quadratic: 25 trials of any sampler get within 0.05 of the optimum (random's median is ~0.003)
    study = tune.run(
        lambda p: (p["x"] - 1.3) ** 2, {"x": tune.Float(-4, 4)}, sampler=sampler, n_trials=25, seed=0
    )
    assert study.best.value < 0.05
    assert study.best.value == min(t.value for t in study.trials)


@pytest.mark.parametrize("sampler", ["random", "quasirandom", "grid", "evolution", "tpe"])
def test_same_seed_same_trials(sampler):
    runs = [tune.run(bowl, SPACE, sampler=sampler, n_trials=10, seed=3) for _ in range(2)]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]


def test_grid_covers_every_combination_then_stops():
    space = {"a": tune.Int(1, 3), "b": tune.Choice(["x", "y"])}
    study = tune.run(lambda p: p["a"], space, sampler="grid", n_trials=100)
    assert sorted((t.params["a"], t.params["b"]) for t in study.trials) == [
        (a, b) for a in (1, 2, 3) for b in "xy"
    ]
    with pytest.raises(SearchExhausted):
        study.ask()


@pytest.mark.parametrize("sampler", MULTI)
def test_multi_objective_pareto_front(sampler):
    # trade-off: f1 = x, f2 = (1 - x)^2 on [0, 1]: every point is Pareto-optimal except dominated noise ones
    space = {"x": tune.Float(0, 1), "waste": tune.Float(0, 1)}
    study = tune.run(
        lambda p: {"q": p["x"] + p["waste"], "cost": (1 - p["x"]) ** 2 + p["waste"]},
        space,
        sampler=thin_grid(sampler, 3),
        directions={"q": "minimize", "cost": "minimize"},
        n_trials=20,
        seed=0,
    )
    front = study.best_trials
    assert front
    for a in front:  # no front member is dominated by any finished trial
        for b in study.finished():
            assert not (b.values[0] <= a.values[0] and b.values[1] <= a.values[1] and b.values != a.values)


@pytest.mark.parametrize(
    "sampler,n_trials", [("tpe", 25), ("gp", 14), ("random", 25), ("evolution", 25), ("nsga2", 25)]
)
def test_constraints_make_best_feasible(sampler, n_trials):
    # unconstrained optimum x=2 violates x <= 1; best must be feasible and near 1
    study = tune.run(
        lambda p: {"loss": (p["x"] - 2) ** 2, "x": p["x"]},
        {"x": tune.Float(-3, 3)},
        sampler=sampler,
        directions={"loss": "minimize"},
        constraints=["x <= 1"],
        n_trials=n_trials,
        seed=0,
    )
    assert study.best.feasible and study.best.params["x"] <= 1
    assert study.best.params["x"] > 0.3
    assert any(not t.feasible for t in study.trials)  # the constraint was really evaluated


def test_evolution_mutates_text_beyond_the_seeds():
    seeds = ["Add the numbers.", "Compute the sum. Reply briefly."]
    space = {"prompt": tune.Text(seeds), "t": tune.Float(0, 1)}
    score = lambda p: -len(p["prompt"]) - p["t"]  # noqa: E731  (prefers longer prompts)
    study = tune.run(
        score,
        space,
        sampler={"name": "evolution", "population": 4, "mutation_rate": 0.8},
        n_trials=30,
        seed=0,
    )
    texts = {t.params["prompt"] for t in study.trials}
    assert texts - set(seeds), "no new text was produced"
    assert len(study.best.params["prompt"]) > max(len(s) for s in seeds)


def test_rule_mutator_crossover_uses_both_parents():
    rng = random.Random(0)
    kids = {RuleMutator().crossover("A one. A two.", "B one. B two.", rng) for _ in range(30)}
    assert any("A" in k and "B" in k for k in kids)


class FakeClient:
    """An OpenAI-compatible client stand-in that records the prompts it got."""

    def __init__(self, reply):
        self.prompts, self.reply = [], reply
        self.chat = self
        self.completions = self

    def create(self, model, messages, temperature):
        self.prompts.append(messages[0]["content"])
        if isinstance(self.reply, Exception):
            raise self.reply
        return type(
            "R", (), {"choices": [type("C", (), {"message": type("M", (), {"content": self.reply})})]}
        )


def test_llm_mutator_reads_failures_and_falls_back():
    client = FakeClient("Reply with digits only.")
    m = LLMMutator("any-model", client=client)
    out = m.mutate(
        "Add.", [{"input": "2+2", "output": "four", "expected": "4", "score": 0.0}], random.Random(0)
    )
    assert out == "Reply with digits only."
    assert "four" in client.prompts[0] and "Add." in client.prompts[0]  # GEPA-style: failures are shown
    broken = LLMMutator("any-model", client=FakeClient(RuntimeError("down")))
    assert broken.mutate("Add.", [], random.Random(0)) != ""  # rule-based fallback, no crash


def test_bayes_resolves_to_gp_for_small_single_objective():
    from reinforge.tune.samplers import make_sampler
    from reinforge.tune.space import Space

    assert make_sampler("bayes", Space({"x": tune.Float(0, 1)}), 1, 50).name == "gp"
    assert make_sampler("bayes", Space(SPACE), 1, 50).name == "tpe"  # conditional space
    assert make_sampler("bayes", Space({"x": tune.Float(0, 1)}), 2, 50).name == "tpe"


SUBSET_SPACE = {
    "tools": tune.Subset(["search", "calc", "wiki", "clock"], min_size=1, max_size=2),
    "calc_desc": tune.Text(["Adds numbers.", "A calculator."], when={"tools": "calc"}),
    "t": tune.Float(0, 1),
}


def tool_score(p: dict) -> float:
    """Best with exactly {calc, wiki}; ``t`` is noise-free filler."""
    return len(set(p["tools"]) ^ {"calc", "wiki"}) + 0.1 * p["t"]


@pytest.mark.parametrize("sampler", ALL)
def test_subset_samples_respect_bounds_options_and_conditions(sampler):
    space = tune.Space(SUBSET_SPACE)
    study = tune.run(
        tool_score,
        SUBSET_SPACE,
        sampler=thin_grid(sampler),
        n_trials=14,
        seed=2,
    )
    assert [t.state for t in study.trials] == ["complete"] * 14
    for t in study.trials:
        assert space["tools"].contains(t.params["tools"])
        assert t.params["tools"] == space["tools"].canonical(t.params["tools"])  # one spelling per subset
        assert ("calc_desc" in t.params) == ("calc" in t.params["tools"])


def test_grid_enumerates_every_subset_within_bounds():
    s = tune.Subset(["a", "b", "c", "d"], min_size=1, max_size=3)
    study = tune.run(lambda p: len(p["s"]), {"s": s}, sampler="grid", n_trials=100)
    assert sorted(tuple(t.params["s"]) for t in study.trials) == sorted(
        c for k in (1, 2, 3) for c in itertools.combinations("abcd", k)
    )


@pytest.mark.parametrize("sampler", ["tpe", "evolution"])
def test_model_based_samplers_find_the_best_subset_and_resume(sampler, tmp_path):
    # TPE learns on one boolean per option; a resumed study hands the stored subsets back to Optuna
    db = tmp_path / "s.db"
    assert (
        len(tune.run(tool_score, SUBSET_SPACE, sampler=sampler, n_trials=20, seed=0, storage=db).trials) == 20
    )
    resumed = tune.run(tool_score, SUBSET_SPACE, sampler=sampler, n_trials=40, seed=0, storage=db)
    assert len(resumed.trials) == 40
    assert resumed.best.params["tools"] == ["calc", "wiki"]


def test_optuna_sees_a_stored_subset_as_booleans():
    from reinforge.tune.samplers import optuna_params
    from reinforge.tune.space import Space

    space = Space(SUBSET_SPACE)
    params, dists = optuna_params(space, {"tools": ["calc", "clock"], "t": 0.5})
    assert params == {
        "tools[search]": False,
        "tools[calc]": True,
        "tools[wiki]": False,
        "tools[clock]": True,
        "t": 0.5,
    }
    assert set(dists) == set(params)
    assert space["tools"].decode([params[f"tools[{o}]"] for o in space["tools"].options]) == ["calc", "clock"]


def test_rule_mutator_crossover_mixes_clauses_of_two_one_sentence_prompts():
    # issue 18: sentence crossover never combines two single-sentence prompts' good parts
    a, b = "Answer briefly, using only digits.", "Think step by step, then check your work."
    rng = random.Random(0)
    kids = {RuleMutator().crossover(a, b, rng) for _ in range(40)}
    mixed = {k for k in kids if k not in (a, b) and ("Answer briefly" in k or "using only digits" in k)}
    assert any("check your work" in k or "think step by step" in k.lower() for k in mixed)
    assert "Answer briefly, then check your work." in kids  # a phrase of each, as one sentence
    assert all(k[0].isupper() and k.endswith(".") for k in kids)


def test_optuna_reads_constraints_of_stored_and_told_trials():
    # issue 21: Optuna 4 keeps one "constraints" list (read through constraints_func), Optuna 5 one
    # attribute per constraint; either way its samplers must see both kinds of trial's values
    from reinforge.tune.sampler_base import AskContext
    from reinforge.tune.samplers import OptunaSampler
    from reinforge.tune.space import Space
    from reinforge.tune.storage import Trial

    space = Space({"x": tune.Float(0.0, 1.0)})
    stored = Trial(0, {"x": 0.5}, "complete", [1.0], constraints=[0.5, -1.0])
    sampler = OptunaSampler("tpe", seed=0)
    sampler.ask(AskContext(space, [stored], 1, ["minimize"], has_constraints=True))
    sampler.tell(Trial(1, {"x": 0.1}, "complete", [2.0], constraints=[-0.25, 0.0]))
    assert sampler.ostudy is not None
    seen = [
        ft.constraints.values() if hasattr(ft, "constraints") else ft.system_attrs["constraints"]
        for ft in sampler.ostudy.trials
    ]
    assert [list(c) for c in seen] == [[0.5, -1.0], [-0.25, 0.0]]
