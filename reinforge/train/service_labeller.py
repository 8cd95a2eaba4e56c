"""People label the RLHF loop's comparisons in the web UI of ``reinforge serve``.

With a ``labelers`` section, each round of ``reinforge rlhf`` posts its comparison requests (plus gold
items with known answers, mixed in) as a shared feedback queue (``serve/annotation.py``) that wants
``annotators_per_item`` labels per item from the keys in ``annotators``; it polls the queue's labels
and starts the reward model once ``min_labels`` comparisons have all their labels (or ``timeout_s``
has passed with at least one decided). Several labels of an item become one preference
(``data/label_quality.aggregate``: majority; ties and skips are counted, never trained on).

Nothing is lost or counted twice across restarts: the labels live in the service's database; the
round's queue reference is written to ``round-N/queue.json`` before the queue is created (creating it
again with that reference returns the same queue), and the label ids a round consumed, with the
preferences they made, to ``round-N/labels.json`` in one atomic write; a resumed round that finds that
file uses it as it is. Labels that arrive after their round closed stay in the service (its quality
figures count them) but train nothing. A server that is down or restarting is waited for.

>>> check_labelers({"server": "http://127.0.0.1:8000", "annotators_per_item": 2})
>>> check_labelers({"server": "http://h", "annotator_per_item": 2})
Traceback (most recent call last):
ValueError: labelers.annotator_per_item: unknown key; known: server, key_env, annotators, annotators_per_item, min_labels, timeout_s, poll_s, gold, gold_per_round, aggregate, kind, samples
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from reinforge.data.label_quality import aggregate
from reinforge.data.preferences import Ranking
from reinforge.errors import ConfigError, ReinforgeError
from reinforge.train.labellers import ComparisonRequest, Labeller

LABELERS_DEFAULTS: dict[str, Any] = {
    "server": None,  # the URL of `reinforge serve` (required)
    "key_env": "REINFORGE_API_KEY",  # environment variable holding the loop's API key
    "annotators": [],  # key ids (besides the loop's own) that may label: `reinforge keys list`
    "annotators_per_item": 1,  # labels wanted per comparison, each from another annotator
    "min_labels": None,  # comparisons with all their labels before the reward model starts (None: all)
    "timeout_s": 86_400.0,  # then go on with what is labelled (an error if nothing is decided)
    "poll_s": 5.0,  # seconds between polls of the labels
    "gold": None,  # preference JSONL with known answers, mixed into each round (accuracy per annotator)
    "gold_per_round": 4,  # gold items per round
    "aggregate": "majority",  # majority | bradley_terry: several labels of one item -> one preference
    "kind": "pairwise",  # what annotators are asked: pairwise (which is better) | thumbs (up/down on each)
    "samples": 3,  # prompts shown before/after the round on its page
}


def check_labelers(spec: dict) -> None:
    """The ``labelers`` section's shape; ValueError, as the config checks it when it loads."""
    for key in spec:
        if key not in LABELERS_DEFAULTS:
            raise ValueError(f"labelers.{key}: unknown key; known: {', '.join(LABELERS_DEFAULTS)}")
    if not str(spec.get("server") or "").startswith(("http://", "https://")):
        raise ValueError(
            "labelers.server: the URL of `reinforge serve` is required, e.g. http://127.0.0.1:8000"
        )
    if int(spec.get("annotators_per_item", 1)) < 1:
        raise ValueError("labelers.annotators_per_item: at least 1")
    if spec.get("aggregate", "majority") not in ("majority", "bradley_terry"):
        raise ValueError("labelers.aggregate: majority or bradley_terry")
    if spec.get("kind", "pairwise") not in ("pairwise", "thumbs"):
        raise ValueError("labelers.kind: pairwise or thumbs")


def write_json(path: Path, obj: Any) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False))
    tmp.replace(path)


class Service:
    """The few calls the loop makes to ``reinforge serve``; a server that cannot be reached (restarting)
    or answers 5xx is retried for ``patience_s``; a 4xx is an error naming the route."""

    def __init__(self, url: str, key: str, patience_s: float, client: Any = None):
        import httpx

        self.http = client or httpx.Client(base_url=url.rstrip("/"), timeout=30)
        self.headers, self.patience_s = {"Authorization": f"Bearer {key}"}, patience_s

    def call(self, method: str, path: str, body: Any = None) -> dict:
        import httpx

        deadline, warned = time.monotonic() + self.patience_s, False
        while True:
            try:
                r = self.http.request(method, "/v1" + path, json=body, headers=self.headers)
                if r.status_code < 500:
                    break
                why = f"{r.status_code}"
            except httpx.TransportError as e:
                why = type(e).__name__
            if time.monotonic() > deadline:
                raise ReinforgeError(
                    f"labelers.server: {method} {path}: no answer ({why}) for {self.patience_s:.0f}s"
                )
            if not warned:
                print(
                    f"reinforge rlhf: the feedback server is not answering ({why}); waiting", file=sys.stderr
                )
                warned = True
            time.sleep(1.0)
        if r.status_code >= 400:
            raise ReinforgeError(f"labelers.server: {method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()


class ServiceLabeller(Labeller):
    """Humans label each round in the web UI; see the module's docstring. ``client``: an ``httpx``
    client to use instead of one on ``server`` (tests pass the app's own)."""

    def __init__(self, spec: dict, key: str | None = None, client: Any = None, seed: int = 0):
        self.spec = {**LABELERS_DEFAULTS, **spec}
        key = key or os.environ.get(self.spec["key_env"])
        if not key:
            raise ConfigError(
                f"labelers.key_env: the environment variable {self.spec['key_env']} holds no API key; "
                "export it (`reinforge keys create --name rlhf` on the server prints one)"
            )
        self.service = Service(self.spec["server"], key, float(self.spec["timeout_s"]), client)
        self.gold = self.load_gold(self.spec["gold"])
        self.k, self.seed, self.run_dir = int(self.spec["annotators_per_item"]), seed, Path(".")

    @staticmethod
    def load_gold(path: str | None) -> list[Ranking]:
        from reinforge.data.preferences import load_preferences

        return (
            [r for r in load_preferences(path, allow_duplicates=True) if len(r.responses) == 2]
            if path
            else []
        )

    def start(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def files(self, round_index: int) -> tuple[Path, Path]:
        rdir = self.run_dir / f"round-{round_index}"
        rdir.mkdir(parents=True, exist_ok=True)
        return rdir / "queue.json", rdir / "labels.json"

    def items(self, requests: list[ComparisonRequest], round_index: int) -> list[dict]:
        """The round's comparisons, then its gold items (a random order of their two responses) at
        random places; the same for the same round and seed."""
        rng = random.Random(self.seed * 1000 + round_index)
        kind = self.spec["kind"]
        items: list[dict[str, Any]] = [
            {"id": r.id, "prompt": r.prompt, "responses": r.responses, "kind": kind} for r in requests
        ]
        for j, g in enumerate(rng.sample(self.gold, min(len(self.gold), int(self.spec["gold_per_round"])))):
            flip = rng.random() < 0.5
            responses = g.responses[::-1] if flip else list(g.responses)
            gold = {
                "id": f"gold-{j}",
                "prompt": g.prompt,
                "responses": responses,
                "gold": [1, 0] if flip else [0, 1],
                "kind": kind,
            }
            items.insert(rng.randrange(len(items) + 1), gold)
        return items

    def open_queue(self, requests: list[ComparisonRequest], round_index: int) -> str:
        """The round's queue id, creating the queue once (its reference is saved first)."""
        queue_file, _ = self.files(round_index)
        state = json.loads(queue_file.read_text()) if queue_file.exists() else {}
        if "ref" not in state:
            state = {"ref": f"rlhf-{uuid.uuid4().hex}/round-{round_index}"}
            write_json(queue_file, state)
        if "queue_id" not in state:
            body = {
                "name": f"RLHF round {round_index}",
                "ref": state["ref"],
                "items": self.items(requests, round_index),
                "annotators_per_item": self.k,
                "annotators": list(self.spec["annotators"]),
                "round": {"round": round_index, "status": "labelling", "requested": len(requests)},
            }
            state["queue_id"] = self.service.call("POST", "/feedback/queues", body)["id"]
            write_json(queue_file, state)
        return state["queue_id"]

    def wait(self, qid: str, need: int) -> list[dict]:
        """Poll the queue's labels until ``need`` comparisons have ``k`` labels, or the timeout."""
        deadline, shown = time.monotonic() + float(self.spec["timeout_s"]), -1
        while True:
            labels = self.service.call("GET", f"/feedback/queues/{qid}/labels")["data"]
            per_item: dict[int, int] = {}
            for lb in labels:
                if not lb["gold"]:
                    per_item[lb["item_id"]] = per_item.get(lb["item_id"], 0) + 1
            complete = sum(n >= self.k for n in per_item.values())
            if complete != shown:
                print(f"reinforge rlhf: {qid}: {complete} of {need} comparisons labelled", file=sys.stderr)
                shown = complete
            if complete >= need or time.monotonic() > deadline:
                return labels
            time.sleep(float(self.spec["poll_s"]))

    def label(self, requests: list[ComparisonRequest], round_index: int) -> list[Ranking]:
        queue_file, labels_file = self.files(round_index)
        if not labels_file.exists():
            qid = self.open_queue(requests, round_index)
            need = min(int(self.spec["min_labels"] or len(requests)), len(requests))
            self.consume(requests, qid, self.wait(qid, need), labels_file)
        done = json.loads(labels_file.read_text())
        by_id = {r.id: r for r in requests}
        return [Ranking(by_id[p["id"]].prompt, p["responses"], 0.0, p["id"]) for p in done["preferences"]]

    def consume(self, requests: list[ComparisonRequest], qid: str, labels: list[dict], out: Path) -> None:
        """Aggregate each comparison's labels into one preference; record them and the label ids used."""
        values: dict[str, list] = {r.id: [] for r in requests}
        for lb in labels:
            if lb["item_ref"] in values:
                values[lb["item_ref"]].append(tuple(lb["value"]) if lb["value"] else None)
        preferences = []
        for r in requests:
            outcome = aggregate(values[r.id], self.spec["aggregate"])
            if outcome.status == "decided" and outcome.ranking is not None:
                preferences.append({"id": r.id, "responses": [r.responses[i] for i in outcome.ranking]})
        if not preferences:
            raise ReinforgeError(
                f"labelers: no comparison of queue {qid} is decided after {self.spec['timeout_s']}s; "
                "label more in the web UI (or raise labelers.timeout_s), then run again with --resume"
            )
        quality = self.service.call("GET", f"/feedback/queues/{qid}/quality")
        metrics = {
            "labels/requested": len(requests),
            "labels/count": len(labels),
            "labels/decided": len(preferences),
            "labels/agreement": quality["agreement"],
            "labels/alpha": quality["alpha"],
            "labels/gold_accuracy": mean_gold(quality),
            "labels/per_hour": sum(a["per_hour"] or 0 for a in quality["annotators"].values()) or None,
            "labels/annotators": len({lb["annotator"] for lb in labels}),
        }
        record = {"queue_id": qid, "consumed": sorted(lb["id"] for lb in labels), "preferences": preferences}
        write_json(out, {**record, "metrics": metrics, "quality": quality})
        status = {"status": "training", "labelled": len(preferences)}
        self.service.call("POST", f"/feedback/queues/{qid}/round", status)

    def metrics(self, round_index: int) -> dict[str, Any]:
        _, labels_file = self.files(round_index)
        return json.loads(labels_file.read_text())["metrics"] if labels_file.exists() else {}

    def report(self, round_index: int, status: dict[str, Any], policy_path: str) -> None:
        queue_file, _ = self.files(round_index)
        qid = json.loads(queue_file.read_text())["queue_id"]
        requests_file = self.run_dir / f"round-{round_index}" / "requests.jsonl"
        samples = samples_after(requests_file, policy_path, int(self.spec["samples"]))
        figures = {"rm_accuracy": status.get("rm_val_accuracy"), "ppo_reward": status.get("ppo_reward")}
        body = {**figures, "kl": status.get("kl"), "status": "done", "samples": samples}
        self.service.call("POST", f"/feedback/queues/{qid}/round", body)


def mean_gold(quality: dict) -> float | None:
    """The annotators' mean accuracy on gold items (None without gold labels)."""
    acc = [
        a["gold"]["accuracy"]
        for a in quality["annotators"].values()
        if a["gold"] and a["gold"]["accuracy"] is not None
    ]
    return round(sum(acc) / len(acc), 4) if acc else None


def samples_after(requests_file: Path, policy_path: str, n: int) -> list[dict]:
    """The first ``n`` prompts of the round with a response from before it (the first compared one)
    and one sampled from the policy after it (greedy)."""
    from reinforge.data.jsonl import read_jsonl
    from reinforge.models.chat import encode_prompt
    from reinforge.models.generation import HFBackend, SamplingParams
    from reinforge.train.warmup import load_model

    rows = read_jsonl(requests_file)[:n] if requests_file.exists() and n > 0 else []
    if not rows:
        return []
    policy, tok = load_model(policy_path)
    gens = HFBackend(policy, tok).generate(
        [encode_prompt(tok, r["prompt"]) for r in rows], SamplingParams(temperature=0.0, max_tokens=48)
    )
    return [
        {"prompt": r["prompt"][-1]["content"], "before": r["responses"][0], "after": text}
        for r, text in zip(rows, gens.texts, strict=True)
    ]
