"""The agent benchmark: TRL reads the tiny model's tool calls as reinforge does, and one step of each side
runs end to end."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_agent
from reinforge.agents.calls import ParsedTurn, ToolCall
from reinforge.agents.formats import HERMES
from reinforge.models.chat import encode_prompt
from reinforge.models.tiny import build_tokenizer

pytest.importorskip("trl")


def test_trl_reads_the_tiny_models_hermes_calls_as_reinforge_does():
    from trl.chat_template_utils import add_response_schema, parse_response

    tok = build_tokenizer()
    with pytest.raises(ValueError, match="Unrecognized chat template"):  # why the benchmark brings its own
        add_response_schema(tok)
    tok.response_template = bench_agent.TINY_RESPONSE_TEMPLATE
    prefix = encode_prompt(tok, [{"role": "user", "content": "12+34"}])
    add = ToolCall("calculator", {"expression": "12+34"}, "call_0")
    cases = [
        ParsedTurn("46"),  # a final answer: content only
        ParsedTurn("", [add]),  # one call, no content (what the SFT'd model writes)
        ParsedTurn("", [add, ToolCall("calculator", {"expression": "1*2"}, "call_1")]),  # two calls
    ]
    for turn in cases:
        text = HERMES.render(turn)
        trl_msg = parse_response(tok, tok(text + "<|end|>")["input_ids"], prefix=prefix)
        trl_calls = [
            (c["function"]["name"], c["function"]["arguments"]) for c in trl_msg.get("tool_calls", [])
        ]
        mine = HERMES.parse(text)
        assert trl_calls == [(c.name, c.arguments) for c in mine.calls], text
        assert trl_msg["content"] == mine.content, text
    # a malformed call: TRL keeps the turn as plain text (no call), reinforge counts it invalid
    bad = '\n<tool_call>\n{"name": "calculator", "argu\n</tool_call>'
    assert "tool_calls" not in parse_response(tok, tok(bad + "<|end|>")["input_ids"], prefix=prefix)
    assert HERMES.parse(bad).invalid and not HERMES.parse(bad).calls


def test_agent_bench_smoke_runs_both_sides(tmp_path, capsys):
    # an SFT of 2 steps (no calls yet): the steps run, the line has every field, the limits hold
    argv = ["--size", "1m", "--steps", "1", "--blocks", "1", "--prompts", "2", "--group", "2"]
    argv += ["--max-tokens", "24", "--sft", "2,4,1e-3", "--cache-dir", str(tmp_path)]
    (res,) = bench_agent.main(argv)
    line = json.loads(next(x for x in capsys.readouterr().out.splitlines() if x.startswith('{"bench"')))
    assert line == res and res["bench"] == "agent" and res["episodes_per_step"] == 4
    assert res["steps_each"] == 1 and res["ratio"] > 0
    for side in ("trl", "reinforge"):
        per = res[f"{side}_per_episode"]
        assert 1 <= per["turns"] <= 2 and 0 < per["tokens"] <= 24, (side, per)
    assert len(list(tmp_path.glob("calculator-1m-k2-*"))) == 1  # the SFT'd model is cached
