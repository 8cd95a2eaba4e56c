"""The calculator task: its tool, its reward over the answer and the calls, disjoint splits, demonstrations
that render through the tiny chat template as Hermes calls."""

from __future__ import annotations

import json

import pytest

from reinforge.models.chat import render_prompt
from reinforge.models.tiny import build_tokenizer
from reinforge.tasks import get_task
from reinforge.tasks.calculator import calculator, calculator_reward, demonstrations

ITEM = {"messages": [{"role": "user", "content": "1234*5678"}], "answer": "7006652"}


def call(expression: str, name: str = "calculator", as_string: bool = True) -> dict:
    args = {"expression": expression}
    return {
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args) if as_string else args},
    }


@pytest.mark.parametrize(
    "sample, reward",
    [
        ({"output_text": "7006652", "output_tools": [call("1234*5678")]}, 1.0),  # called, answered
        ({"output_text": " 7006652\n", "output_tools": []}, 0.8),  # answered without the tool
        ({"output_text": "7006651", "output_tools": [call("1234*5678", as_string=False)]}, 0.2),  # dict args
        ({"output_text": "", "output_tools": [call("1234*5679")]}, 0.0),  # the wrong expression
        ({"output_text": "", "output_tools": [call("1234*5678", name="search")]}, 0.0),  # another tool
        (
            {"output_text": "", "output_tools": [{"function": {"name": "calculator", "arguments": "{oops"}}]},
            0.0,
        ),
        ({"output_text": "7006652"}, 0.8),  # a sample with no output_tools at all
    ],
)
def test_reward_reads_the_answer_and_the_calls(sample, reward):
    assert calculator_reward(ITEM, sample) == pytest.approx(reward)


@pytest.mark.parametrize("bad", ["2**9", "1+", "12/3", "import os"])
def test_the_tool_refuses_anything_but_a_sum_or_product_of_two_whole_numbers(bad):
    with pytest.raises(ValueError, match="two whole numbers"):
        calculator(bad)


def test_splits_are_disjoint_and_rows_carry_the_tool():
    task = get_task("calculator")
    train, val = task.make_rows(200, seed=0), task.make_rows(100, seed=0, split="validation")
    assert not {r["messages"][0]["content"] for r in train} & {r["messages"][0]["content"] for r in val}
    assert all(r["answer"] == calculator(r["messages"][0]["content"]) and r["tools"] for r in train)


def test_a_demonstration_renders_its_call_in_the_hermes_format():
    (demo,) = demonstrations(get_task("calculator").make_rows(1, seed=3))
    text = render_prompt(
        build_tokenizer(), demo["messages"], add_generation_prompt=False, tools=demo["tools"]
    )
    expression = demo["messages"][0]["content"]
    assert (
        f'<tool_call>\n{{"name": "calculator", "arguments": {{"expression": "{expression}"}}}}\n</tool_call>'
        in text
    )
    assert f"<tool_response>{calculator(expression)}</tool_response>" in text


@pytest.mark.parametrize("share", [0.0, 0.5, 0.9, 1.0])
def test_mental_additions_are_that_share_of_the_additions_exactly_and_nothing_else(share):
    rows = get_task("calculator").make_rows(48, seed=1)
    demos = demonstrations(rows, mental_additions=share, seed=0)
    additions = [r for r in rows if "+" in r["messages"][0]["content"]]
    direct = [(r, d) for r, d in zip(rows, demos) if "tool_calls" not in d["messages"][1]]
    assert len(direct) == round(share * len(additions))
    # the writer's own sums are right; every multiplication still shows the calculator in use
    assert all(
        "+" in r["messages"][0]["content"] and d["messages"][1]["content"] == r["answer"] for r, d in direct
    )
    assert demonstrations(rows, share, seed=0) == demos  # the same draw for a seed
