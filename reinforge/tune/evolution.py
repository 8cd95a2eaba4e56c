"""Evolutionary search of our own: tournament selection, crossover, mutation and elitism, with text
(prompts) mutated and recombined by a pluggable mutator.

Steady state and stateless: each ``ask`` rebuilds the population from the history — the best
``population`` finished trials (elitism: a good configuration stays until better ones push it out)
— then picks two parents by tournament, crosses them per parameter, and mutates each parameter
with probability ``mutation_rate``. Numbers move by a Gaussian step in the parameter's unit scale;
choices are redrawn; a subset gains, loses or swaps an option (crossover mixes both parents'
options); texts go to the mutator, which sees the parent's graded failures (GEPA-style reflection
when the mutator is an LLM). Several objectives rank by Pareto front, then crowding.

>>> from reinforge.tune.space import Space, Float
>>> from reinforge.tune.sampler_base import AskContext
>>> s = EvolutionSampler(population=4, seed=0)
>>> p = s.ask(AskContext(Space({"x": Float(0, 1)}), [], 0, ["minimize"]))
>>> 0 <= p["x"] <= 1
True
"""

from __future__ import annotations

import random
import re
from typing import Any, Protocol

from reinforge.tune.pareto import rank_order, to_minimize
from reinforge.tune.sampler_base import AskContext, Sampler, config_key
from reinforge.tune.space import Choice, Float, Int, Space, Subset, Text
from reinforge.tune.storage import Trial


class TextMutator(Protocol):
    def mutate(self, text: str, failures: list[dict], rng: random.Random) -> str:
        """A variant of ``text``; ``failures`` are graded examples the parent did badly on."""
        ...

    def crossover(self, a: str, b: str, rng: random.Random) -> str:
        """A text combining ``a`` and ``b``."""
        ...


def split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s]


CLAUSE_BREAK = re.compile(r"(?<=[,;:.!?])\s+|\n+|\s+(?=(?:and|but|then|so|or|while|unless|because)\s)")


def split_clauses(text: str) -> list[str]:
    """Clauses and phrases: pieces between commas, semicolons, colons, sentence ends and before a
    conjunction, each keeping its own punctuation.

    >>> split_clauses("Answer briefly, using digits only. Think, then check.")
    ['Answer briefly,', 'using digits only.', 'Think,', 'then check.']
    """
    return [c for c in CLAUSE_BREAK.split(text.strip()) if c]


def join_clauses(clauses: list[str]) -> str:
    """Clauses back into text: capitalised after a sentence end, closed with a full stop.

    >>> join_clauses(["Answer briefly,", "Think step by step,", "then check"])
    'Answer briefly, think step by step, then check.'
    """
    out = ""
    for c in clauses:
        if not out or out[-1] in ".!?":
            c = c[:1].upper() + c[1:]
        elif c[:1].isupper() and not c.startswith(("I ", "I'")) and not c[1:2].isupper():
            c = c[:1].lower() + c[1:]  # a sentence's start, now inside one
        out = f"{out} {c}" if out else c
    return out if not out or out[-1] in ".!?" else out.rstrip(",;:") + "."


class RuleMutator:
    """Rule-based text edits: add an instruction from a bank, drop or reorder a sentence;
    crossover joins a prefix of one parent's clauses to a suffix of the other's, so two one-sentence
    prompts combine their phrases ("Answer briefly, using digits." x "Think, then check." ->
    "Answer briefly, then check.")."""

    INSTRUCTIONS = [
        "Answer with only the final answer.",
        "Be concise.",
        "Think carefully before answering.",
        "Use only the information given.",
        "If unsure, give your best guess.",
        "Do not repeat the question.",
        "Check your answer before replying.",
    ]

    def __init__(self, instructions: list[str] | None = None):
        self.instructions = instructions or self.INSTRUCTIONS

    def mutate(self, text: str, failures: list[dict], rng: random.Random) -> str:
        sents = split_sentences(text)
        op = rng.choice(["add", "drop", "swap"] if len(sents) > 1 else ["add"])
        if op == "add":
            new = [s for s in self.instructions if s not in sents] or self.instructions
            sents.insert(rng.randrange(len(sents) + 1), rng.choice(new))
        elif op == "drop":
            sents.pop(rng.randrange(len(sents)))
        else:
            i, j = rng.sample(range(len(sents)), 2)
            sents[i], sents[j] = sents[j], sents[i]
        return " ".join(sents)

    def crossover(self, a: str, b: str, rng: random.Random) -> str:
        ca, cb = split_clauses(a), split_clauses(b)
        if not ca or not cb:
            return a or b
        head, tail = (ca, cb) if rng.random() < 0.5 else (cb, ca)
        cut_head, cut_tail = rng.randint(1, len(head)), rng.randint(0, len(tail) - 1)  # both give a clause
        out = head[:cut_head] + [c for c in tail[cut_tail:] if c not in head[:cut_head]]
        return join_clauses(out)


class LLMMutator:
    """Asks any OpenAI-compatible endpoint to rewrite a prompt from its graded failures (as GEPA
    reflects on traces) or to merge two prompts. Falls back to the rule mutator when a call fails."""

    REWRITE = (
        "You improve prompts for an LLM system. Current prompt:\n<prompt>\n{text}\n</prompt>\n"
        "Examples it did badly on (input, output, expected, score, grader notes):\n{failures}\n"
        "Diagnose what went wrong, then write an improved prompt. Reply with the new prompt only."
    )
    MERGE = (
        "Two prompts for the same task:\n<a>\n{a}\n</a>\n<b>\n{b}\n</b>\n"
        "Write one prompt that combines the strengths of both. Reply with the new prompt only."
    )

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        temperature: float = 0.7,
        max_failures: int = 5,
    ):
        if client is None:
            from openai import OpenAI  # ~1 s to import: only an LLM mutator without a client needs it

            client = OpenAI(base_url=base_url, api_key=api_key or "none")
        self.client, self.model, self.temperature, self.max_failures = (
            client,
            model,
            temperature,
            max_failures,
        )
        self.fallback = RuleMutator()

    def _complete(self, prompt: str) -> str | None:
        try:
            r = self.client.chat.completions.create(
                model=self.model, temperature=self.temperature, messages=[{"role": "user", "content": prompt}]
            )
            text = (r.choices[0].message.content or "").strip()
            return text or None
        except Exception:  # a mutator never stops a study
            return None

    def mutate(self, text: str, failures: list[dict], rng: random.Random) -> str:
        shown = "\n".join(f"- {f}" for f in failures[: self.max_failures]) or "- (none recorded)"
        return self._complete(self.REWRITE.format(text=text, failures=shown)) or self.fallback.mutate(
            text, failures, rng
        )

    def crossover(self, a: str, b: str, rng: random.Random) -> str:
        return self._complete(self.MERGE.format(a=a, b=b)) or self.fallback.crossover(a, b, rng)


def make_mutator(spec: dict | str | None) -> TextMutator:
    if spec is None or spec == "rules":
        return RuleMutator()
    if isinstance(spec, dict) and spec.get("type", "llm") == "llm":
        return LLMMutator(**{k: v for k, v in spec.items() if k != "type"})
    if isinstance(spec, dict) and spec.get("type") == "rules":
        return RuleMutator(spec.get("instructions"))
    raise ValueError(f"mutator {spec!r}: use 'rules' or {{type: llm, model: ..., base_url: ...}}")


class EvolutionSampler(Sampler):
    name = "evolution"

    def __init__(
        self,
        population: int = 8,
        tournament: int = 3,
        mutation_rate: float = 0.3,
        sigma: float = 0.15,
        crossover_rate: float = 0.7,
        seed: int = 0,
        mutator: TextMutator | dict | str | None = None,
    ):
        self.population, self.tournament, self.mutation_rate = population, tournament, mutation_rate
        self.sigma, self.crossover_rate, self.seed = sigma, crossover_rate, seed
        self.mutator_spec = mutator if isinstance(mutator, dict | str) or mutator is None else "custom"
        self.mutator = (
            make_mutator(mutator) if isinstance(mutator, dict | str) or mutator is None else mutator
        )

    def spec(self) -> dict:
        spec = {
            "name": self.name,
            "population": self.population,
            "tournament": self.tournament,
            "mutation_rate": self.mutation_rate,
            "sigma": self.sigma,
            "crossover_rate": self.crossover_rate,
            "seed": self.seed,
        }
        if isinstance(self.mutator_spec, dict | str) and self.mutator_spec != "custom":
            spec["mutator"] = self.mutator_spec
        return spec

    def _ranked(self, ctx: AskContext) -> list[Trial]:
        done = [t for t in ctx.trials if t.state == "complete" and t.values is not None]
        if not done:
            return []
        penalty = [0.0 if t.feasible else 1e12 * sum(max(c, 0) for c in t.constraints or []) for t in done]
        vals = to_minimize([t.scored for t in done], ctx.directions) + [
            [p] * len(ctx.directions) for p in penalty
        ]
        return [done[i] for i in rank_order(vals.tolist())]

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}-evo-{ctx.number}")
        ranked = self._ranked(ctx)
        if len(ranked) < self.population:  # seed the population: random, but every Text seed variant first
            return ctx.space.sample(rng)
        pop = ranked[: self.population]  # elitism: the best survive as parents
        tried = {config_key(t.params) for t in ctx.trials}
        child: dict[str, Any] = {}
        for _ in range(20):  # retry until the child is new
            a, b = self._tournament(pop, rng), self._tournament(pop, rng)
            child = self._crossover(ctx.space, a.params, b.params, rng)
            child = self._mutate(ctx.space, child, a.attrs.get("failures", []), rng)
            child = ctx.space.repair(child, rng)
            if config_key(child) not in tried:
                break
        return child

    def _tournament(self, pop: list[Trial], rng: random.Random) -> Trial:
        """Best (lowest rank index) of ``tournament`` members drawn at random."""
        picks = rng.sample(range(len(pop)), min(self.tournament, len(pop)))
        return pop[min(picks)]

    def _crossover(self, space: Space, a: dict, b: dict, rng: random.Random) -> dict:
        if rng.random() > self.crossover_rate:
            return dict(a)
        child: dict[str, Any] = {}
        for name, p in space.items():
            if name in a and name in b and isinstance(p, Text) and a[name] != b[name] and rng.random() < 0.5:
                child[name] = self.mutator.crossover(a[name], b[name], rng)
            elif name in a and name in b and isinstance(p, Subset):
                child[name] = p.cross(a[name], b[name], rng)
            elif name in a or name in b:
                child[name] = rng.choice([x[name] for x in (a, b) if name in x])
        return child

    def _mutate(self, space: Space, params: dict, failures: list[dict], rng: random.Random) -> dict:
        out = dict(params)
        for name, value in params.items():
            p = space.params.get(name)
            if p is None or rng.random() >= self.mutation_rate:
                continue
            if isinstance(p, Text):
                out[name] = self.mutator.mutate(value, failures, rng) if rng.random() < 0.7 else p.sample(rng)
            elif isinstance(p, Choice):
                out[name] = p.sample(rng)
            elif isinstance(p, Subset):  # add, remove or swap one option
                out[name] = p.mutate(value, rng)
            elif isinstance(p, Int | Float):
                u = min(max(p.to_unit(value) + rng.gauss(0.0, self.sigma), 0.0), 0.999999)
                out[name] = p.from_unit(u)
        return out
