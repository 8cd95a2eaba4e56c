"""The episode runner: token ids kept as generated, the loss mask, the limits and the end rules."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reinforge.agents.calls import ParsedTurn
from reinforge.agents.environment import StepResult
from reinforge.agents.episode import (
    Episode,
    EpisodeLimits,
    episode_metrics,
    observation_ids,
    run_episodes,
)
from reinforge.agents.tools import RolloutDiscarded, ToolResult
from reinforge.models.generation import Generations, HFBackend, SamplingParams
from reinforge.models.tiny import build_tokenizer

TOK = build_tokenizer()
EOS = TOK.eos_token_id
ROW = {"messages": [{"role": "user", "content": "2+3?"}]}
LIMITS = EpisodeLimits(
    max_new_tokens=128, max_episode_tokens=400
)  # the tiny tokenizer: a token per character


def ids_of(text: str) -> list[int]:
    return TOK(text, add_special_tokens=False)["input_ids"]


CALL = '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'


class ScriptedBackend:
    """A GenerationBackend that answers call t with ``script[t]`` for every prompt, and records its inputs
    (the runner's contract with a backend is exactly these ids in, these ids out)."""

    pad_id = 0

    def __init__(self, script: list[list[int]], finish: str = "stop"):
        self.script, self.finish = script, finish
        self.prompts: list[list[list[int]]] = []
        self.params: list[SamplingParams] = []

    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> Generations:
        comp = self.script[len(self.prompts)][: params.max_tokens]
        self.prompts.append([list(p) for p in prompt_ids])
        self.params.append(params)
        n = len(prompt_ids) * params.n
        finish = self.finish if len(comp) == len(self.script[len(self.prompts) - 1]) else "length"
        return Generations(
            [list(comp)] * n,
            [[-0.5] * len(comp)] * n,
            [TOK.decode(comp, skip_special_tokens=True)] * n,
            [finish] * n,
            n=params.n,
        )


class AddEnv:
    """Answers every call with the sum of its arguments; done when the model answers without a call."""

    def __init__(self, row: dict, rollout_id: str):
        self.rollout_id = rollout_id

    def reset(self, row: dict) -> list[dict]:
        return row["messages"]

    def step(self, action: ParsedTurn) -> StepResult:
        if not action.calls:
            return StepResult([], done=True)
        results = [ToolResult(str(sum(c.arguments.values())), None, 0.25) for c in action.calls]
        messages = [
            {"role": "tool", "content": r.text, "tool_call_id": c.id} for r, c in zip(results, action.calls)
        ]
        return StepResult(messages, results=results)


class FailingEnv(AddEnv):
    def step(self, action: ParsedTurn) -> StepResult:
        raise RolloutDiscarded("tool 'add': 503 after 3 retries")


def test_ids_are_kept_as_generated_not_re_tokenised():
    # the model spelled "<|end|>" out of single characters before its real end token: decoding the history
    # and encoding it again gives the special token instead of those 7 ids, so a re-tokenising runner
    # would train on ids that were never sampled
    first = ids_of(CALL + "<") + ids_of("|end|>") + [EOS]
    backend = ScriptedBackend([first, ids_of("5") + [EOS]])
    (ep,) = run_episodes(backend, TOK, [ROW], AddEnv, LIMITS)
    retokenised = ids_of(TOK.decode(ep.prompt_ids + first))
    assert retokenised != ep.prompt_ids + first  # the constructed case does differ
    obs = observation_ids(TOK, [{"role": "tool", "content": "5", "tool_call_id": "call_0"}], EOS)
    assert backend.prompts[1] == [ep.prompt_ids + first + obs]  # turn 2 continues the kept ids
    assert ep.ids == first + obs + ids_of("5") + [EOS]
    assert ep.loss_mask == [1] * len(first) + [0] * len(obs) + [1] * 2
    assert ep.logprobs[len(first) : len(first) + len(obs)] == [0.0] * len(obs)
    assert ep.status == "done" and ep.turns == 2 and ep.final_text == "5"
    assert ep.output_tools == [
        {"id": "call_0", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}
    ]
    assert ep.sample()["trajectory"]["tool_calls"] == 1 and ep.sample()["trajectory"]["env_reward"] is None


def test_observation_segment_is_what_the_template_appends():
    tool = [{"role": "tool", "content": "5", "tool_call_id": "call_0"}]
    conv = ROW["messages"] + [{"role": "assistant", "content": "x"}]
    from reinforge.models.chat import render_prompt

    whole = render_prompt(TOK, conv + tool)
    assert TOK.decode(observation_ids(TOK, tool, EOS)) == whole[len(render_prompt(TOK, conv, False)) :]


def test_single_turn_grades_the_call_without_running_it():
    backend = ScriptedBackend([ids_of(CALL) + [EOS]])
    eps = run_episodes(backend, TOK, [ROW, ROW], None, LIMITS, group_size=3)
    assert len(eps) == 6 and all(e.status == "done" and e.turns == 1 for e in eps)
    assert backend.params[0].n == 3 and len(backend.prompts[0]) == 2  # each prompt given once per group
    assert eps[0].output_tools[0]["function"]["name"] == "add"


@pytest.mark.parametrize(
    "limits, script, why",
    [
        # the second call passes max_tool_calls=1: it is not run
        (replace(LIMITS, max_tool_calls=1), [ids_of(CALL) + [EOS]] * 2, "max_tool_calls"),
        # a call in the last allowed turn: no turn left to read its result
        (replace(LIMITS, max_episode_steps=1), [ids_of(CALL) + [EOS]], "max_episode_steps"),
        # a turn cut by max_new_tokens (no end token)
        (replace(LIMITS, max_new_tokens=5), [ids_of(CALL) + [EOS]], "max_new_tokens"),
        # the observation fills the episode's token budget
        (replace(LIMITS, max_episode_tokens=len(CALL) + 3), [ids_of(CALL) + [EOS]], "max_episode_tokens"),
    ],
)
def test_limits_truncate(limits, script, why):
    backend = ScriptedBackend(script)
    (ep,) = run_episodes(backend, TOK, [ROW], AddEnv, limits)
    assert (ep.status, ep.truncation) == ("truncated", why)
    assert len(ep.ids) <= limits.max_episode_tokens and len(ep.loss_mask) == len(ep.ids)


def test_a_failed_tool_discards_the_episode_and_counts_it():
    eps = run_episodes(ScriptedBackend([ids_of(CALL) + [EOS]]), TOK, [ROW], FailingEnv, LIMITS, 2)
    assert [e.status for e in eps] == ["discarded"] * 2 and "503" in (eps[0].truncation or "")
    assert episode_metrics(eps)["agent/discarded"] == 2


def test_metrics():
    eps = run_episodes(
        ScriptedBackend([ids_of(CALL + "<tool_call>{oops</tool_call>") + [EOS], ids_of("5") + [EOS]]),
        TOK,
        [ROW],
        AddEnv,
        LIMITS,
    )
    m = episode_metrics(eps)
    assert m["agent/tool_calls_mean"] == 1 and m["agent/invalid_call_rate"] == 0.5
    assert m["agent/turns_mean"] == 2 and m["agent/tool_seconds_mean"] == 0.25
    assert m["agent/tokens_mean"] == len(eps[0].ids) and m["agent/discarded"] == 0


def test_real_backend_runs_multi_turn_episodes(tiny_addition_dir):
    from reinforge.models.loading import load_model

    model, tok = load_model(str(tiny_addition_dir))
    backend = HFBackend(model, tok)
    limits = EpisodeLimits(max_episode_steps=3, max_new_tokens=8, max_episode_tokens=40)
    eps = run_episodes(backend, tok, [ROW, ROW], AlwaysObserve, limits, 2, SamplingParams(seed=1))
    for ep in eps:
        assert isinstance(ep, Episode) and len(ep.ids) == len(ep.loss_mask) == len(ep.logprobs)
        assert ep.turns >= 1 and ep.status in ("done", "truncated")
        assert sum(ep.loss_mask) >= ep.turns  # every turn generated at least its end token


class AlwaysObserve(AddEnv):
    """Answers every turn with a user message, so episodes run to a limit."""

    def step(self, action: ParsedTurn) -> StepResult:
        return StepResult("go on")
