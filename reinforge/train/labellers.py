"""Labellers of the RLHF loop (``train/rlhf.py``): what turns a round's comparison requests into preferences.

- :class:`GraderLabeller`: any grader scores both responses; the higher wins (ties are skipped);
- :class:`FunctionLabeller`: a Python function ``compare(prompt, a, b) -> 1 | -1 | 0``;
- :class:`QueueLabeller`: humans through files. It writes the round's comparison requests to
  ``<queue>/requests/round-N.jsonl`` and waits until preference JSONL files in ``<queue>/labels/``
  (pairs or rankings, as the web UI exports them) answer at least ``min_labels`` of them;
- ``ServiceLabeller`` (``train/service_labeller.py``): humans in the web UI of ``reinforge serve``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reinforge.data.preferences import Ranking, prompt_text
from reinforge.errors import ReinforgeError


@dataclass
class ComparisonRequest:
    """Two responses of the policy to one prompt, waiting for a preference."""

    id: str
    item: dict  # the dataset row (prompt messages + reference fields a grader may use)
    prompt: list[dict]
    responses: list[str]


class Labeller(ABC):
    """Turns comparison requests into preferences. Call order: ``start(run_dir)`` once, then per round
    ``label(requests, round)``, ``metrics(round)`` and, after the round's PPO, ``report(round, ...)``."""

    def start(self, run_dir: Path) -> None:
        """The loop's run directory, where a labeller may keep its state (the default keeps none)."""
        return None

    @abstractmethod
    def label(self, requests: list[ComparisonRequest], round_index: int) -> list[Ranking]:
        """Return rankings (best first) for the requests it could decide; ties and skips are left out."""

    def metrics(self, round_index: int) -> dict[str, Any]:
        """The round's label metrics (``labels/...``) for the loop's summary; none by default."""
        return {}

    def report(self, round_index: int, status: dict[str, Any], policy_path: str) -> None:
        """The round's figures once its PPO is done (``rm_accuracy``, ``ppo_reward``, ``kl``)."""
        return None


class GraderLabeller(Labeller):
    """A programmatic annotator: the response with the higher grader score wins."""

    def __init__(self, grader, tie_eps: float = 1e-9):
        from reinforge.graders import as_grader

        self.grader, self.tie_eps = as_grader(grader), tie_eps

    def label(self, requests: list[ComparisonRequest], round_index: int) -> list[Ranking]:
        from reinforge.graders.base import make_sample
        from reinforge.train.rollout import grade_safely

        pairs = [(r.item, make_sample(text)) for r in requests for text in r.responses]
        scores = [g.reward for g in grade_safely(self.grader, pairs)]
        out = []
        for k, r in enumerate(requests):
            a, b = scores[2 * k], scores[2 * k + 1]
            if abs(a - b) > self.tie_eps:
                best, worst = (0, 1) if a > b else (1, 0)
                out.append(Ranking(r.prompt, [r.responses[best], r.responses[worst]], 0.0, r.id))
        return out


class FunctionLabeller(Labeller):
    """``compare(prompt_messages, a, b)`` returns 1 (a better), -1 (b better) or 0 (tie: skipped)."""

    def __init__(self, compare: Callable[[list[dict], str, str], int]):
        self.compare = compare

    def label(self, requests: list[ComparisonRequest], round_index: int) -> list[Ranking]:
        out = []
        for r in requests:
            verdict = self.compare(r.prompt, r.responses[0], r.responses[1])
            if verdict:
                order = r.responses if verdict > 0 else r.responses[::-1]
                out.append(Ranking(r.prompt, list(order), 0.0, r.id))
        return out


class QueueLabeller(Labeller):
    """Human labels through files: requests out to ``requests/``, preference JSONL back in ``labels/``."""

    def __init__(
        self, path: str | Path, min_labels: int, poll_seconds: float = 5.0, timeout_seconds: float = 86_400
    ):
        self.path, self.min_labels = Path(path), min_labels
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds

    def write_requests(self, requests: list[ComparisonRequest], round_index: int) -> Path:
        from reinforge.data.jsonl import write_jsonl

        out = self.path / "requests" / f"round-{round_index}.jsonl"
        write_jsonl(
            out,
            [
                {"id": r.id, "round": round_index, "prompt": r.prompt, "responses": r.responses}
                for r in requests
            ],
        )
        (self.path / "labels").mkdir(parents=True, exist_ok=True)
        return out

    def collect(self, requests: list[ComparisonRequest]) -> list[Ranking]:
        """The labelled answers to ``requests`` found in ``labels/*.jsonl`` (other rows are ignored)."""
        from reinforge.data.preferences import load_preferences

        wanted = {(prompt_text(r.prompt), frozenset(r.responses)) for r in requests}
        found: dict[tuple, Ranking] = {}
        for f in sorted((self.path / "labels").glob("*.jsonl")):
            if f.stat().st_size == 0:
                continue
            for rk in load_preferences(f, allow_duplicates=True):
                key = (prompt_text(rk.prompt), frozenset(rk.responses))
                if key in wanted:
                    found[key] = rk  # the latest label of a request wins
        return list(found.values())

    def label(self, requests: list[ComparisonRequest], round_index: int) -> list[Ranking]:
        self.write_requests(requests, round_index)
        need = min(self.min_labels, len(requests))
        deadline = time.time() + self.timeout_seconds
        while True:
            got = self.collect(requests)
            if len(got) >= need:
                return got
            if time.time() > deadline:
                raise ReinforgeError(
                    f"{self.path}/labels: {len(got)} of {need} labels after {self.timeout_seconds:.0f}s; "
                    f"label more in the web UI (or lower labeller.min_labels), then --resume"
                )
            time.sleep(self.poll_seconds)


LABELLER_KEYS = {
    "grader": ("type", "grader"),
    "queue": ("type", "path", "min_labels", "poll_seconds", "timeout_seconds"),
}


def check_labeller(spec: dict) -> None:
    """The ``labeller`` spec's shape; ValueError, as the config checks it when it loads."""
    kind = spec.get("type", "grader")
    if kind not in LABELLER_KEYS:
        raise ValueError(f"labeller.type {kind!r}: choose grader or queue")
    for key in spec:
        if key not in LABELLER_KEYS[kind]:
            raise ValueError(
                f"labeller.{key}: not a {kind} labeller's key; known: {', '.join(LABELLER_KEYS[kind])}"
            )
    if kind == "queue" and "path" not in spec:
        raise ValueError("labeller.path: the queue directory the web UI exports labels to is required")
