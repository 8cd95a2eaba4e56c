"""The agent demo's shipped base: its weights are the ones its recipe names, built by today's recipe, and it
does what it stands in for (copying the question into a tool call and the tool's answer into the reply)."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from reinforge.demo_agent_base import BASE_DIR, QUICK, RECIPE, base_dir, build_base, copy_check
from reinforge.errors import ReinforgeError


def test_the_shipped_base_is_what_the_recipe_builds():
    manifest = json.loads((base_dir() / "recipe.json").read_text())
    assert manifest["recipe"] == RECIPE  # change the recipe, and this fails until `make agent-base` reruns
    assert manifest["copy_check"]["calls"] >= 0.9 and manifest["copy_check"]["answers"] >= 0.9


def test_the_shipped_base_copies_into_calls_and_out_of_tool_answers():
    model = AutoModelForCausalLM.from_pretrained(BASE_DIR)
    tok = AutoTokenizer.from_pretrained(BASE_DIR)
    check = copy_check(model, tok, n=16, seed=123)  # episodes it never saw
    assert check["calls"] >= 0.9 and check["answers"] >= 0.9, check
    # a real BPE tokenizer: JSON merges, digits one per token, the Hermes tags whole
    assert tok.tokenize('<tool_call>{"name": "2024') == [
        "<tool_call>",
        '{"',
        "name",
        '":',
        ' "',
        "2",
        "0",
        "2",
        "4",
    ]


def test_weights_that_are_not_the_recipes_are_refused(tmp_path):
    copy = shutil.copytree(BASE_DIR, tmp_path / "base")
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(b"\x01" if last != b"\x01" else b"\x02")  # one byte of the last tensor
    with pytest.raises(
        ReinforgeError, match="not the weights its recipe.json names; rebuild it: make agent-base"
    ):
        base_dir(copy)
    with pytest.raises(ReinforgeError, match="base is missing"):
        base_dir(tmp_path / "nowhere")


def test_a_quick_build_records_its_recipe_hash_and_copy_check(tmp_path):
    out = build_base(tmp_path / "b", quick=True)
    manifest = json.loads((out / "recipe.json").read_text())
    assert manifest["recipe"] == {**RECIPE, **QUICK}
    assert set(manifest["copy_check"]) == {"calls", "answers"} and manifest["seconds"] > 0
    assert base_dir(out) == out  # its hash is its weights'
