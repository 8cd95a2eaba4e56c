"""The evaluation cache: its key changes exactly when something that can change an output or its reward does."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reinforge.graders.base import CallableGrader
from reinforge.tune.objectives import ExampleObjective

# --- the inputs of each objective kind that change an output or its reward, with a few values each ---

GRADERS = {  # None: the task's own grader; the last one is issue 24's always-0 grader
    "task": None,
    "exact": {"type": "string_check", "name": "g", "input": "{{sample.output_text}}",
              "reference": "{{item.answer}}", "operation": "eq"},
    "not_equal": {"type": "string_check", "name": "g", "input": "{{sample.output_text}}",
                  "reference": "{{item.answer}}", "operation": "ne"},
    "python": {"type": "python", "name": "g", "source": "def grade(sample, item):\n    return 1.0\n"},
    "python_other": {"type": "python", "name": "g", "source": "def grade(sample, item):\n    return 0.5\n"},
    "label_pos": {"type": "label_model", "name": "j", "model": "judge", "labels": ["positive", "negative"],
                  "passing_labels": ["positive"], "input": [{"role": "user", "content": "{{sample.output_text}}"}]},
    "label_neg": {"type": "label_model", "name": "j", "model": "judge", "labels": ["positive", "negative"],
                  "passing_labels": ["negative"], "input": [{"role": "user", "content": "{{sample.output_text}}"}]},
    "zero": lambda item, sample: 0.0,
}  # fmt: skip
ROWS = [  # data content
    {"messages": [{"role": "user", "content": "12+34"}], "answer": "46"},
    {"messages": [{"role": "user", "content": "12+34"}], "answer": "47"},
    {"messages": [{"role": "user", "content": "21+34"}], "answer": "55"},
]
GENERATION = {
    "model": [
        "tiny:addition:1m",
        "tiny:addition:2m",
        "local:v1",
        "local:v22",
    ],  # local: same dir, new weights
    "task": ["addition", "sentiment"],  # the few-shot pool (and the default grader)
    "shots": [0, 2, 4],
    "seed": [0, 1],  # sampling seed and few-shot pool
    "grader": list(GRADERS),
    "template": ["{input}", "Q: {input}", "What is {input}?"],
    "few_shot": [0, 2],
    "temperature": [0.0, 0.7],
    "top_p": [0.9, 1.0],
    "max_tokens": [4, 8],
    "votes": [1, 3],
    "row": [0, 1, 2],
}
RAG = {
    "documents": ["a", "b"],  # the same file name, other content
    "chunk_size": [20, 40],
    "k": [1, 3],
    "retriever": ["bm25", "dense"],
    "row": [0, 1],
}
PIPELINES = {
    "echo": lambda p, rows: [p["x"] for _ in rows],
    "upper": lambda p, rows: [p["x"].upper() for _ in rows],
}
PYTHON = {"pipeline": list(PIPELINES), "grader": list(GRADERS), "x": ["a", "b"], "row": [0, 1, 2]}
KINDS = {"generation": GENERATION, "rag": RAG, "python": PYTHON}
KNOBS = {
    "template",
    "few_shot",
    "temperature",
    "top_p",
    "max_tokens",
    "votes",
    "chunk_size",
    "k",
    "retriever",
    "x",
}

# --- inputs that change neither: prices, batching, the cache file, shuffling, failures kept, row count ---
IRRELEVANT = st.fixed_dictionaries(
    {
        "price": st.sampled_from([0.0, 0.5]),
        "batch_size": st.integers(1, 64),
        "cache": st.sampled_from(["a.db", "b.db"]),
        "shuffle_seed": st.sampled_from([None, 0, 1]),
        "keep_failures": st.integers(0, 5),
        "examples": st.integers(1, 8),
        "reverse_params": st.booleans(),  # the configuration's key order
    }
)


def build(kind: str, inp: dict, irr: dict, tmp: Path) -> tuple[ExampleObjective, dict, dict]:
    """The objective, the configuration and the example that ``inp`` describes."""
    params = {k: v for k, v in inp.items() if k in KNOBS}
    if irr["reverse_params"]:
        params = dict(reversed(params.items()))
    cache = tmp / irr["cache"]
    if kind == "generation":
        from reinforge.tune.generation import generation_objective

        model = inp["model"]
        if model.startswith("local:"):  # rewrite the weights in place: the directory's name stays
            weights = tmp / "model" / "model.safetensors"
            weights.parent.mkdir(exist_ok=True)
            if not weights.exists() or weights.read_text() != model:  # untouched when unchanged
                weights.write_text(model)
            model = str(tmp / "model")
        obj = generation_objective(
            model, inp["task"], irr["examples"], inp["shots"], inp["seed"], GRADERS[inp["grader"]], cache,
            irr["price"], irr["price"],
        )  # fmt: skip
        return obj, params, ROWS[inp["row"]]
    if kind == "rag":
        from reinforge.tune.rag import rag_objective

        docs = [{"id": f"d{i}", "text": f"{inp['documents']} text {i}"} for i in range(3)]
        (tmp / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        (tmp / "questions.jsonl").write_text('{"question": "text 1?", "doc_id": "d1"}\n')
        obj = rag_objective(tmp / "documents.jsonl", tmp / "questions.jsonl", cache=cache)
        return obj, params, {"question": f"question {inp['row']}?", "doc_id": "d1"}
    grader = GRADERS[inp["grader"]] or CallableGrader(lambda i, s: 1.0, name="one")
    rows = ROWS[: irr["examples"] % 3 + 1]
    obj = ExampleObjective(
        PIPELINES[inp["pipeline"]], rows, grader, cache=cache, price_per_1k_input=irr["price"],
        batch_size=irr["batch_size"], keep_failures=irr["keep_failures"], shuffle_seed=irr["shuffle_seed"],
    )  # fmt: skip
    return obj, params, ROWS[inp["row"]]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(KINDS)), data=st.data())
def test_cache_key_changes_exactly_when_an_input_of_the_output_does(tmp_path, kind, data):
    inputs = KINDS[kind]
    a = {k: data.draw(st.sampled_from(v), label=k) for k, v in inputs.items()}
    changed = data.draw(st.sets(st.sampled_from(sorted(inputs)), max_size=2), label="changed")
    b = dict(a)
    for k in changed:
        b[k] = data.draw(st.sampled_from([v for v in inputs[k] if v != a[k]]), label=f"new {k}")
    obj_a, params_a, row_a = build(kind, a, data.draw(IRRELEVANT, label="irrelevant a"), tmp_path)
    key_a = obj_a.key(params_a, row_a)
    obj_b, params_b, row_b = build(kind, b, data.draw(IRRELEVANT, label="irrelevant b"), tmp_path)
    key_b = obj_b.key(params_b, row_b)
    if changed:
        assert key_a != key_b, f"{kind}: changing {sorted(changed)} kept the cache key"
    else:
        assert key_a == key_b, f"{kind}: only irrelevant inputs changed, yet the key did"


def test_another_grader_does_not_read_the_cached_rewards(tmp_path):
    # Issue 24: an exact-match grader scored 1.0; then an always-0 grader on the same study file scored
    # 1.0 with 0 graded (the rewards came from the cache).
    def echo_answer(params, rows):
        return [r["answer"] for r in rows]

    db = tmp_path / "study.db"
    rows = ROWS[:2]
    exact = ExampleObjective(echo_answer, rows, GRADERS["exact"], name="gen:m:addition", cache=db)
    assert exact({})["score"] == 1.0
    zero = ExampleObjective(echo_answer, rows, GRADERS["zero"], name="gen:m:addition", cache=db)
    m = zero({})
    assert (m["score"], m["examples_graded"]) == (0.0, 2)


def test_rag_cache_follows_the_documents_content_not_the_file_name(tmp_path):
    # Issue 24: corpus B, same file name in another folder, read corpus A's cached recall with 0 graded.
    from reinforge.tune.rag import rag_objective

    db = tmp_path / "study.db"
    params = {"chunk_size": 50, "chunk_overlap": 0, "k": 1, "retriever": "bm25"}
    recalls = []
    for corpus, ids in (("a", ["d1", "d2"]), ("b", ["d2", "d1"])):  # B: the ids swapped
        folder = tmp_path / corpus
        folder.mkdir()
        docs = [
            {"id": ids[0], "text": "library books lending"},
            {"id": ids[1], "text": "waste bins collection"},
        ]
        (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        (folder / "questions.jsonl").write_text('{"question": "library books", "doc_id": "d1"}\n')
        m = rag_objective(folder / "documents.jsonl", folder / "questions.jsonl", cache=db)(params)
        recalls.append((m["score"], m["examples_graded"]))
    assert recalls == [(1.0, 1), (0.0, 1)]


def test_estimate_separates_loading_from_the_time_per_trial():
    # Issue 14: 61.4 min was printed before a 29 s run: the probes' model loading was charged to every
    # example. A simulated clock: 1 s per new configuration, 0.5 s per example, and 10 s loading a model
    # the second configuration needs (as a dense retriever loads MiniLM after a BM25 one).
    from reinforge import tune
    from reinforge.tune.objectives import estimate_cost

    now, seen = [0.0], set()

    def pipeline(params, rows):
        new = params["x"] not in seen
        now[0] += (10.0 if new and len(seen) == 1 else 0.0) + (1.0 if new else 0.0) + 0.5 * len(rows)
        seen.add(params["x"])
        return ["a"] * len(rows)

    rows = [{"i": i} for i in range(40)]
    obj = ExampleObjective(pipeline, rows, lambda i, s: 1.0, shuffle_seed=None)
    space = tune.Space({"x": tune.Float(0, 1)})
    est = estimate_cost(obj, space, n_trials=30, probes=2, probe_examples=4, clock=lambda: now[0])
    assert est["setup_s"] == (1 + 2) + (10 + 1 + 2)  # two 4-example warm-up probes, one loading
    assert est["trial_s"] == 1.0 + 40 * 0.5  # then two whole trials, timed
    assert est["seconds_range"] == (16 + 30 * 21.0,) * 2  # both timed trials took 21 s
    assert est["seconds"] == 16 + 30 * 21.0 and est["examples"] == 30 * 40 and est["pilot_examples"] == 88
