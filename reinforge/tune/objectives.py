"""Objectives over a dataset: run a pipeline on examples, grade each output, average — with a cache.

:class:`ExampleObjective` is what LLM apps are tuned with. Called as ``objective(params, budget)`` it
evaluates the first ``budget`` examples (all when ``budget`` is None). Every (config, example) output
and its grade is stored in the study's SQLite file, so no model call is repeated: not across
trials, not when a scheduler promotes a trial to more examples, not after a kill and resume. The key
covers everything the output and its reward depend on (:mod:`reinforge.tune.fingerprint`): the
pipeline (model, few-shot pool, seed, documents), the grader, the configuration and the example.

It returns a dict of metrics: ``score`` (mean grade), ``scores`` (per example, for paired tests),
``tokens``, ``usd`` and ``latency_s`` (per example: cost objectives), ``examples_graded``, ``tokens_spent``,
``model_calls`` and ``cost_usd`` (new work only: what budgets count) and ``failures`` (the worst
examples, with an agent's trajectory and the grader's sub-scores and error flags: what an LLM mutator
reflects on).

>>> from reinforge.graders.base import CallableGrader
>>> rows = [{"q": "2+2", "answer": "4"}, {"q": "3+3", "answer": "6"}]
>>> calls = []
>>> def pipeline(params, batch):
...     calls.extend(batch)
...     return [str(eval(r["q"]) + params["offset"]) for r in batch]
>>> obj = ExampleObjective(pipeline, rows, CallableGrader(lambda i, s: float(s["output_text"] == i["answer"])))
>>> obj({"offset": 0})["score"], obj({"offset": 0})["examples_graded"], len(calls)
(1.0, 0, 2)
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reinforge.errors import ReinforgeError
from reinforge.graders.base import Grader, make_sample
from reinforge.tune.fingerprint import digest, fingerprint, spec_fingerprint
from reinforge.tune.storage import Storage

Pipeline = Callable[[dict, list[dict]], list[Any]]  # (params, rows) -> one output (str or dict) per row


def cache_key(scope: str, params: dict, row: dict) -> str:
    """sha256 over the objective's scope (:attr:`ExampleObjective.scope`: its name, pipeline and grader),
    the whole configuration and the example's content."""
    return digest([scope, params, row])


def as_output(out: Any) -> dict:
    """A pipeline output as a dict with ``output_text`` and usage fields (zeros when not given)."""
    d = dict(out) if isinstance(out, dict) else {"output_text": str(out)}
    d.setdefault("output_text", "")
    for k in ("prompt_tokens", "completion_tokens", "model_calls"):
        d.setdefault(k, 0)
    return d


class ExampleObjective:
    """Grade ``pipeline`` over ``rows``; see the module docstring for the returned metrics."""

    def __init__(
        self,
        pipeline: Pipeline,
        rows: Sequence[dict],
        grader: Grader | Callable,
        name: str = "pipeline",
        cache: str | Path | Storage | None = None,
        price_per_1k_input: float = 0.0,
        price_per_1k_output: float = 0.0,
        batch_size: int = 16,
        keep_failures: int = 5,
        shuffle_seed: int | None = 0,
    ):
        from reinforge.graders import as_grader

        if not rows:
            raise ReinforgeError(f"{name}: the dataset is empty")
        rows = list(rows)
        if shuffle_seed is not None:  # a budget of b examples is then a random subset, not the file's head
            random.Random(shuffle_seed).shuffle(rows)
        self.pipeline, self.rows, self.grader, self.name = pipeline, rows, as_grader(grader), name
        # what an output and its reward depend on besides the configuration and the example: another
        # grader, model or document set sharing the study's cache file must not read these records
        graded_by = (
            spec_fingerprint(grader) if isinstance(grader, dict | str | Path) else fingerprint(self.grader)
        )
        self.scope = digest({"name": name, "pipeline": fingerprint(pipeline), "grader": graded_by})
        self.cache_path = cache if not isinstance(cache, Storage) else None
        self._cache = cache if isinstance(cache, Storage) else None
        self.prices = (price_per_1k_input, price_per_1k_output)
        self.batch_size, self.keep_failures = batch_size, keep_failures

    def __getstate__(self) -> dict:  # the SQLite handle is reopened in each worker process
        return {**self.__dict__, "_cache": None}

    @property
    def cache(self) -> Storage:
        if self._cache is None:
            self._cache = Storage(self.cache_path)
        return self._cache

    def key(self, params: dict, row: dict) -> str:
        """The cache key of ``row``'s output under ``params``."""
        return cache_key(self.scope, params, row)

    @property
    def n_examples(self) -> int:
        return len(self.rows)

    def __call__(self, params: dict, budget: int | None = None) -> dict[str, Any]:
        rows = self.rows[: budget or len(self.rows)]
        keys = [self.key(params, row) for row in rows]
        records: list[dict | None] = [self.cache.cache_get(k) for k in keys]
        todo = [i for i, r in enumerate(records) if r is None]
        new_calls = new_in = new_out = 0
        for start in range(0, len(todo), self.batch_size):  # 1. run the pipeline on uncached examples
            idx = todo[start : start + self.batch_size]
            t0 = time.perf_counter()
            outs = [as_output(o) for o in self.pipeline(params, [rows[i] for i in idx])]
            if len(outs) != len(idx):
                raise ReinforgeError(
                    f"{self.name}: pipeline returned {len(outs)} outputs for {len(idx)} rows"
                )
            latency = (time.perf_counter() - t0) / len(idx)
            samples = [{**make_sample(o["output_text"]), **o} for o in outs]
            grades = self.grader.grade_batch([(rows[i], s) for i, s in zip(idx, samples)])  # 2. grade them
            for i, o, g in zip(idx, outs, grades):
                rec = {
                    "output_text": o["output_text"],
                    "reward": g.reward,
                    "errors": g.errors,
                    "prompt_tokens": o["prompt_tokens"],
                    "completion_tokens": o["completion_tokens"],
                    "model_calls": o["model_calls"],
                    "latency_s": o.get("latency_s", latency),
                    "extra": numeric_extras(o),
                    "trace": trace(o),  # an agent's calls and results, for a mutator to reflect on
                    "notes": {**g.sub_rewards, **{k: True for k, v in g.errors.items() if v}},  # grader's
                }
                self.cache.cache_put(keys[i], rec)  # 3. committed at once: a kill loses nothing graded
                records[i] = rec
                new_calls += o["model_calls"]
                new_in += o["prompt_tokens"]
                new_out += o["completion_tokens"]
        return self.summarise(rows, records, len(todo), new_calls, new_in, new_out)

    def summarise(self, rows, records, n_new, new_calls, new_in, new_out) -> dict[str, Any]:
        n = len(records)
        scores = [r["reward"] for r in records]
        tokens = [r["prompt_tokens"] + r["completion_tokens"] for r in records]
        usd = [r["prompt_tokens"] * self.prices[0] + r["completion_tokens"] * self.prices[1] for r in records]
        worst = sorted(range(n), key=lambda i: scores[i])[: self.keep_failures]
        failures = [
            {
                "input": _short(rows[i].get("messages", rows[i])),
                "output": _short(records[i]["output_text"]),
                "expected": _short({k: v for k, v in rows[i].items() if k != "messages"}),
                "score": scores[i],
                **({"trajectory": records[i]["trace"]} if records[i].get("trace") else {}),
                **({"grader_notes": records[i]["notes"]} if records[i].get("notes") else {}),
            }
            for i in worst
            if scores[i] < 1.0
        ]
        metrics = {
            "score": sum(scores) / n,
            "scores": scores,
            "tokens": sum(tokens) / n,
            "latency_s": sum(r["latency_s"] for r in records) / n,
            "usd": sum(usd) / n / 1000,
            "examples": n,
            "examples_graded": n_new,
            "model_calls": new_calls,
            "tokens_spent": new_in + new_out,
            "cost_usd": (new_in * self.prices[0] + new_out * self.prices[1]) / 1000,
            "failures": failures,
        }
        for r in records:  # extra per-example costs a pipeline reports, e.g. context_tokens for RAG
            for k, v in r.get("extra", {}).items():
                metrics[k] = metrics.get(k, 0) + v / n
        return metrics


def whole_batch_objective(
    pipeline: Pipeline, rows: list[dict], grader: Any, name: str, cache: Any, prices: tuple[float, float]
) -> ExampleObjective:
    """An example objective whose pipeline takes all the rows at once (it bounds its own concurrency)."""
    return ExampleObjective(
        pipeline,
        rows,
        grader,
        name=name,
        cache=cache,
        price_per_1k_input=prices[0],
        price_per_1k_output=prices[1],
        batch_size=max(len(rows), 1),
    )


STANDARD = {"output_text", "prompt_tokens", "completion_tokens", "model_calls", "latency_s"}


def numeric_extras(output: dict) -> dict[str, float]:
    """Numbers a pipeline reports beyond the standard usage fields (e.g. ``context_tokens``)."""
    return {
        k: v
        for k, v in output.items()
        if k not in STANDARD and isinstance(v, int | float) and not isinstance(v, bool)
    }


def trace(output: dict) -> str | None:
    """An agent output's turns after the prompt, one short line each (None for a plain completion).

    >>> trace({"trajectory": {"messages": [{"role": "assistant", "tool_calls": [
    ...     {"function": {"name": "calc", "arguments": '{"e": "2*3"}'}}]}, {"role": "tool", "content": "6"}]}})
    'assistant: calc({"e": "2*3"}) | tool: 6'
    """
    messages = (output.get("trajectory") or {}).get("messages") or []
    if not any(m.get("tool_calls") or m.get("role") == "tool" for m in messages):
        return None
    lines = []
    for m in messages:
        calls = [f"{c['function']['name']}({c['function']['arguments']})" for c in m.get("tool_calls") or []]
        lines.append(f"{m['role']}: {', '.join(calls) or m.get('content') or ''}")
    return _short(" | ".join(lines), 600)


def _short(x: Any, limit: int = 300) -> str:
    s = x if isinstance(x, str) else json.dumps(x, default=str)
    return s if len(s) <= limit else s[:limit] + "..."


def estimate_cost(
    objective: ExampleObjective,
    space,
    n_trials: int,
    examples_per_trial: float | None = None,
    probes: int = 2,
    probe_examples: int = 4,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Extrapolate a study's graded examples, model calls, tokens, money and time from a timed pilot.

    The pilot first runs ``probes`` random configurations on ``probe_examples`` examples each: this
    loads what they need (models, MiniLM), once per process (``setup_s``). Then it times ``probes``
    other configurations on a whole trial's examples, batched as a trial is: their mean is the time of
    a trial (``trial_s``; the fastest and slowest give ``seconds_range``). Examples are an upper bound (every trial at its full budget, no cache hits).
    The pilot's outputs land in the cache: the study does not pay for them again."""
    rng = random.Random(seed)
    per_trial = int(examples_per_trial or objective.n_examples)
    totals = {"examples_graded": 0.0, "model_calls": 0.0, "tokens_spent": 0.0, "cost_usd": 0.0}

    def timed(n: int) -> float:
        t0 = clock()
        m = objective(space.sample(rng), n)
        for k in totals:
            totals[k] += m[k]
        return clock() - t0

    setup_s = sum(timed(probe_examples) for _ in range(probes))
    trials = [timed(per_trial) for _ in range(probes)] or [0.0]
    trial_s = sum(trials) / len(trials)
    graded = max(totals.pop("examples_graded"), 1)
    examples = n_trials * per_trial
    est = {k: v / graded * examples for k, v in totals.items()}
    return {
        "examples": examples,
        "model_calls": est["model_calls"],
        "tokens": est["tokens_spent"],
        "cost_usd": est["cost_usd"],
        "seconds": setup_s + n_trials * trial_s,
        "seconds_range": (setup_s + n_trials * min(trials), setup_s + n_trials * max(trials)),
        "setup_s": setup_s,
        "trial_s": trial_s,
        "pilot_examples": int(graded),
    }
