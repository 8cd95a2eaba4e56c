"""`reinforge demo agent`: the calculator endpoint's rules, and the quick form running every stage (SFT with
and without the tool, RFT in episodes against the HTTP calculator) to the summary and plot."""

from __future__ import annotations

import json

import httpx
import pytest
from transformers import AutoTokenizer

from reinforge.demo_agent import ToolServer, calculator_app, run_demo_agent, settings
from reinforge.tasks.calculator import TOOL

SUMMARY_KEYS = (
    "no_tool_val_reward",
    "sft_val_reward",
    "final_val_reward",
    "valid_call_rate",
    "mean_tool_calls",
    "discarded_rollouts",
    "seconds",
)


@pytest.mark.parametrize(
    "body, status, text",
    [
        ({"expression": "48213*5921"}, 200, "285469173"),  # the answer, as text
        ({"expression": "12+34"}, 200, "46"),
        ({"expression": "2**9"}, 400, "calculator: expression '2**9': write two whole numbers"),  # not + or *
        ({"expr": "1+2"}, 400, "calculator: calculator() got an unexpected keyword argument"),  # wrong name
    ],
)
def test_the_calculator_endpoint_answers_text_and_a_bad_call_is_a_400_for_the_model(body, status, text):
    with ToolServer(calculator_app()) as url:
        r = httpx.post(f"{url}/calculator", json=body, headers={"X-Rollout-Id": "r-1"})
    assert r.status_code == status and r.text.startswith(text), r.text


def test_quick_demo_runs_every_stage_to_the_summary_and_plot(tmp_path):
    summary = run_demo_agent(tmp_path / "demo", quick=True)
    on_disk = json.loads((tmp_path / "demo" / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in on_disk and on_disk[key] == summary[key], key
    for key in ("no_tool_val_reward", "sft_val_reward", "final_val_reward"):
        assert 0 <= summary[key] <= 1, key
    assert summary["valid_call_rate"] is None or 0 <= summary["valid_call_rate"] <= 1  # None: no call made
    # the final figure is the RFT run's last validation, of episodes against the HTTP tool
    run = tmp_path / "demo" / "rft"
    evals = [
        r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"
    ]
    assert summary["final_val_reward"] == evals[-1]["eval/reward_mean"]
    assert "eval/agent/tool_calls_mean" in evals[-1]
    assert (tmp_path / "demo" / "agent_demo.png").stat().st_size > 0
    assert (run / "final" / "config.json").exists()
    # the trained model keeps the Hermes tags as single tokens (a tiny model copies across them far better)
    tok = AutoTokenizer.from_pretrained(run / "final")
    assert tok.tokenize("<tool_response>7</tool_response>") == ["<tool_response>", "7", "</tool_response>"]


def test_a_turn_and_an_episode_have_room_for_the_longest_call_and_answer():
    """The demo once gave each turn 48 tokens with a character-level tokenizer: every call (~85 characters,
    one token each) was cut off, so every episode ended truncated with no call made and RFT had nothing to
    learn from."""
    from reinforge.demo_agent_base import BASE_DIR
    from reinforge.tasks.calculator import demonstrations
    from reinforge.train.sft import tokenize_chat

    tok = AutoTokenizer.from_pretrained(BASE_DIR)
    widest = f"{10**6 - 1}*{10**6 - 1}"  # the task's longest expression and longest answer
    demo = demonstrations(
        [{"messages": [{"role": "user", "content": widest}], "tools": [TOOL], "answer": ""}]
    )[0]
    demo["messages"][-1]["content"] = demo["messages"][-2]["content"]
    ids, labels = tokenize_chat(tok, demo["messages"], demo["tools"])
    prompt = len(tokenize_chat(tok, demo["messages"][:1], demo["tools"])[0]) + 1  # + the assistant header
    first_turn = next(i for i in range(prompt, len(labels)) if labels[i] == -100) - prompt  # the call and EOS
    s = settings(quick=False)
    assert first_turn <= s["max_new_tokens"]
    assert len(ids) - prompt <= s["agent"]["max_episode_tokens"]
