"""The RLHF loop: labellers (programmatic and the human file queue) and two tiny rounds end to end."""

from __future__ import annotations

import json
import threading

import pytest

from reinforge.errors import ReinforgeError
from reinforge.train.rlhf import ComparisonRequest, FunctionLabeller, GraderLabeller, QueueLabeller
from tests.helpers import micro_model, prompt_rows, wait_for, write_jsonl


def requests(n: int) -> list[ComparisonRequest]:
    return [
        ComparisonRequest(f"r{i}", {"n": i}, [{"role": "user", "content": f"q{i}"}], [f"a{i}", f"bb{i}"])
        for i in range(n)
    ]


def test_grader_and_function_labellers_skip_ties():
    reqs = requests(3) + [ComparisonRequest("tie", {}, [{"role": "user", "content": "t"}], ["xy", "zw"])]
    by_length = GraderLabeller(lambda item, sample: len(sample["output_text"])).label(reqs, 1)
    assert [r.responses for r in by_length] == [["bb0", "a0"], ["bb1", "a1"], ["bb2", "a2"]]  # tie skipped
    first_wins = FunctionLabeller(lambda prompt, a, b: 1 if a < b else -1).label(reqs[:1], 1)
    assert first_wins[0].responses == ["a0", "bb0"]


def test_queue_labeller_waits_for_labels(tmp_path):
    q = QueueLabeller(tmp_path / "queue", min_labels=2, poll_seconds=0.05, timeout_seconds=20)
    reqs = requests(3)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("labels", q.label(reqs, 1)))
    worker.start()
    sent_file = tmp_path / "queue" / "requests" / "round-1.jsonl"
    wait_for(lambda: sent_file.exists() and len(sent_file.read_text().splitlines()) == len(reqs), every=0.05)
    sent = [json.loads(x) for x in sent_file.read_text().splitlines()]
    assert [r["responses"] for r in sent] == [r.responses for r in reqs]
    assert "labels" not in result  # still waiting: nothing labelled yet
    # the web UI exports a pair and a ranking; an unrelated label is ignored
    write_jsonl(
        tmp_path / "queue" / "labels" / "ui.jsonl",
        [
            {"prompt": "q0", "chosen": "bb0", "rejected": "a0"},
            {"prompt": [{"role": "user", "content": "q2"}], "responses": ["a2", "bb2"], "ranking": [0, 1]},
            {"prompt": "other", "chosen": "x", "rejected": "y"},
        ],
    )
    worker.join(10)
    assert sorted(r.responses[0] for r in result["labels"]) == ["a2", "bb0"]


def test_queue_labeller_times_out_with_a_clear_error(tmp_path):
    q = QueueLabeller(tmp_path / "queue", min_labels=1, poll_seconds=0.01, timeout_seconds=0.05)
    with pytest.raises(ReinforgeError, match="0 of 1 labels"):
        q.label(requests(1), 1)


def test_two_rounds_end_to_end(tmp_path):
    from reinforge.train.rlhf import RLHFConfig, run_rlhf

    model = micro_model(tmp_path / "m")
    prompts = write_jsonl(tmp_path / "prompts.jsonl", prompt_rows(32))
    cfg = RLHFConfig(
        model=str(model),
        task=None,
        prompts_file=str(prompts),
        output_dir=str(tmp_path / "rlhf"),
        rounds=2,
        comparisons_per_round=24,
        max_new_tokens=4,
        rm={"steps": 3, "batch_size": 8, "progress": False, "device": "cpu", "eval_interval": 0},
        ppo={
            "steps": 2,
            "prompts_per_step": 8,
            "num_minibatches": 2,
            "ppo_epochs": 1,
            "max_new_tokens": 4,
            "progress": False,
            "device": "cpu",
            "eval_interval": 0,
            "save_interval": 0,
        },
    )
    digits = FunctionLabeller(
        lambda p, a, b: (sum(map(ord, a)) > sum(map(ord, b))) - (sum(map(ord, a)) < sum(map(ord, b)))
    )
    summary = run_rlhf(cfg, labeller=digits)
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert summary["rounds"][1]["labels_total"] > summary["rounds"][0]["labels_total"]
    import yaml

    cfg2 = yaml.safe_load((tmp_path / "rlhf" / "round-2" / "ppo" / "config.yaml").read_text())
    assert cfg2["init_from"].endswith("round-1/ppo/final") and cfg2["model"] == str(model)
    # resuming a finished loop is a no-op that returns the same rounds
    again = run_rlhf(cfg, resume=True, labeller=digits)
    assert again["rounds"] == summary["rounds"]


@pytest.mark.parametrize("name", ["sft", "rm", "ppo", "dpo", "rlhf", "rlhf_human"])
def test_example_configs_load(name):
    import importlib
    from pathlib import Path

    from reinforge.config import load_config

    module, cls = {
        "sft": ("sft_trainer", "SFTConfig"),
        "rm": ("reward", "RMConfig"),
        "ppo": ("ppo", "PPOConfig"),
        "dpo": ("dpo", "DPOConfig"),
    }.get(name, ("rlhf", "RLHFConfig"))
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(
        getattr(importlib.import_module(f"reinforge.train.{module}"), cls),
        root / f"examples/rlhf/{name}.yaml",
    )
    for key in ("train_file", "prompts_file"):
        if getattr(cfg, key, None):
            assert (root / getattr(cfg, key)).exists()
