"""The episode runner: all group x batch episodes advanced turn by turn, token ids kept as generated.

Each turn is one batched ``generate`` over every live episode's full token ids (prompt, then what was
generated and observed so far); the turn's text is parsed into tool calls (:mod:`reinforge.agents.formats`),
every live environment is stepped at once (tool calls run concurrently, bounded), and the observation is
rendered through the chat template and encoded alone, as a segment appended to the ids: the history is
never re-tokenised (decode then encode does not give back the sampled ids, and training on other ids than
those sampled breaks the policy gradient; verl's agent loop keeps ids the same way). ``loss_mask`` is 1
on generated tokens only, so tool and environment tokens never enter the policy loss or the KL.

An episode ends ``done`` (the environment says so, or there is none: single-turn function calling, where
the grader scores the call itself), ``truncated`` (a limit of :class:`EpisodeLimits` hit: ``truncation``
names it) or ``discarded`` (a tool endpoint failed past its retries: :class:`RolloutDiscarded`).

>>> ep = Episode(row={}, prompt_ids=[5, 6], rollout_id="r-0")
>>> ep.add_generated([7, 8], [-0.5, -0.1]); ep.add_observation([9])
>>> ep.ids, ep.loss_mask, ep.status
([7, 8, 9], [1, 1, 0], 'running')
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from reinforge.agents.calls import ParsedTurn, ToolCall
from reinforge.agents.formats import ToolCallFormat, format_for
from reinforge.agents.tools import RolloutDiscarded
from reinforge.errors import ReinforgeError
from reinforge.graders.base import make_sample
from reinforge.models.chat import encode_prompt, render_prompt
from reinforge.models.generation import GenerationBackend, SamplingParams


@dataclass
class EpisodeLimits:
    """When an episode stops short of ``done``: each limit hit ends it ``truncated``."""

    max_episode_steps: int = 4  # model turns (generations) per episode
    max_tool_calls: int = 8  # tool calls per episode; a turn that would pass it is not run
    max_episode_tokens: int = 256  # generated plus observation tokens after the prompt
    max_new_tokens: int = 64  # tokens per turn; a turn cut here (no end token) truncates the episode
    concurrency: int = 16  # environment steps (tool calls) in flight at once


@dataclass
class Episode:
    """One episode: ``prompt_ids``, then ``ids`` (generated and observation tokens, as generated/encoded)."""

    row: dict
    prompt_ids: list[int]
    rollout_id: str
    messages: list[dict] = field(default_factory=list)  # the conversation, prompt included
    n_prompt_messages: int = 0  # how many of ``messages`` are the prompt
    ids: list[int] = field(default_factory=list)  # after the prompt
    loss_mask: list[int] = field(default_factory=list)  # 1 on generated tokens, 0 on observation tokens
    logprobs: list[float] = field(default_factory=list)  # the sampler's, 0 on observation tokens
    calls: list[ToolCall] = field(default_factory=list)
    turns: int = 0
    invalid_calls: int = 0
    tool_errors: Counter = field(default_factory=Counter)  # error kind -> count
    tool_seconds: list[float] = field(default_factory=list)  # latency of each tool call run
    final_text: str = ""  # the last turn's text outside tool-call markup
    env_reward: float | None = None  # the last reward an environment step gave (None: the grader decides)
    status: str = "running"  # running | done | truncated | discarded
    truncation: str | None = None  # the limit that ended a truncated episode, or why it was discarded

    def add_generated(self, ids: list[int], logprobs: list[float]) -> None:
        self.ids += ids
        self.loss_mask += [1] * len(ids)
        self.logprobs += logprobs

    def add_observation(self, ids: list[int]) -> None:
        self.ids += ids
        self.loss_mask += [0] * len(ids)
        self.logprobs += [0.0] * len(ids)

    def end(self, status: str, why: str | None = None) -> None:
        self.status, self.truncation = status, why

    @property
    def output_tools(self) -> list[dict]:
        """Every call of the episode in OpenAI's shape (``{"id", "type": "function", "function"}``)."""
        return [c.to_openai() for c in self.calls]

    def trajectory(self) -> dict:
        """What a grader reads as ``sample.trajectory``: the turns after the prompt and the counts."""
        return {
            "messages": self.messages[self.n_prompt_messages :],
            "turns": self.turns,
            "tool_calls": len(self.calls),
            "invalid_calls": self.invalid_calls,
            "tool_errors": sum(self.tool_errors.values()),
            "status": self.status,
            "truncation": self.truncation,
            "env_reward": self.env_reward,  # an environment's own last reward, for the grader to use
        }

    def sample(self) -> dict:
        """The grader's ``sample``: final text, ``output_tools`` and the trajectory."""
        return make_sample(self.final_text, self.output_tools, trajectory=self.trajectory())


# ------------------------------------------------------------------------------------ observations


def as_messages(observation: str | list[dict], role: str = "user") -> list[dict]:
    """An environment's observation as chat messages (text is one ``role`` message)."""
    if isinstance(observation, str):
        return [{"role": role, "content": observation}] if observation else []
    return list(observation)


_BASE = [{"role": "user", "content": "."}, {"role": "assistant", "content": "."}]


def observation_ids(tokenizer: Any, messages: list[dict], stop_id: int | None) -> list[int]:
    """Token ids of ``messages`` (tool results, a user's reply) as the chat template renders them after an
    assistant turn, up to and including the next assistant header; only this segment is encoded.

    The template renders a short stand-in conversation with and without ``messages``; the segment is the
    difference, taken from just after the stand-in's end-of-turn token (``stop_id``, the token that ended
    the model's turn: what the template writes after it, e.g. Qwen's newline, was not generated)."""
    before = render_prompt(tokenizer, _BASE, add_generation_prompt=False)
    after = render_prompt(tokenizer, _BASE + messages, add_generation_prompt=True)
    if not after.startswith(before):
        raise ReinforgeError(
            "the chat template renders the conversation before a tool message differently once the tool "
            "message is added, so observations cannot be appended as tokens; use a template that renders "
            "messages in order (Qwen2.5's, Llama 3's, the tiny models')"
        )
    cut = len(before)
    if stop_id is not None:
        stop = tokenizer.convert_ids_to_tokens(stop_id)
        at = before.rfind(stop) if isinstance(stop, str) and stop else -1
        if at >= 0:
            cut = at + len(stop)
    return tokenizer(after[cut:], add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------------------------ stepping


async def _step_one(env: Any, turn: ParsedTurn, limiter: asyncio.Semaphore) -> Any:
    """One environment step: ``astep`` when it has one (it bounds its own calls with ``limiter``), else
    ``step`` in a worker thread under ``limiter``. RolloutDiscarded comes back as a value."""
    try:
        if hasattr(env, "astep"):
            return await env.astep(turn, limiter=limiter)
        async with limiter:
            result = await asyncio.to_thread(env.step, turn)
        return await result if inspect.isawaitable(result) else result
    except RolloutDiscarded as e:
        return e


def step_all(envs: list[Any], turns: list[ParsedTurn], concurrency: int) -> list[Any]:
    """Step every environment on its turn at once; a StepResult or a RolloutDiscarded for each."""

    async def main() -> list[Any]:
        limiter = asyncio.Semaphore(concurrency)
        return await asyncio.gather(*(_step_one(e, t, limiter) for e, t in zip(envs, turns)))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    out: list[Any] = []  # called from inside an event loop (a service worker): run in a thread of its own
    worker = threading.Thread(target=lambda: out.append(asyncio.run(main())))
    worker.start()
    worker.join()
    return out[0]


# ------------------------------------------------------------------------------------ the runner


def start_episodes(
    tokenizer: Any, rows: list[dict], env_factory: Any, group_size: int, rollout_prefix: str
) -> tuple[list[Episode], list[Any]]:
    """``group_size`` episodes per row, prompt-major, each with its environment reset (None: no environment)."""
    episodes, envs = [], []
    for i, row in enumerate(rows):
        for j in range(group_size):
            rid = f"{rollout_prefix}-{i}-{j}"
            env = env_factory(row, rid) if env_factory is not None else None
            first = env.reset(row) if env is not None else None
            messages = as_messages(first) if first is not None else list(row["messages"])
            if messages and messages[-1].get("role") == "assistant":  # a reference answer: not the prompt
                messages = messages[:-1]
            ids = encode_prompt(tokenizer, messages, tools=row.get("tools"))
            episodes.append(Episode(row, ids, rid, messages=messages, n_prompt_messages=len(messages)))
            envs.append(env)
    return episodes, envs


def generate_turn(
    backend: GenerationBackend, live: list[Episode], params: SamplingParams, turn: int, group_size: int
):
    """One batched generate over the live episodes. On the first turn, when every group shares its prompt,
    each prompt is given once with ``n = group_size`` (the backend prefills it once for its group)."""
    seed = None if params.seed is None else params.seed + 7919 * turn
    first = turn == 0 and group_size > 1 and len(live) % group_size == 0
    if first and all(live[k].prompt_ids == live[k - k % group_size].prompt_ids for k in range(len(live))):
        prompts = [live[k].prompt_ids for k in range(0, len(live), group_size)]
        n = group_size
    else:
        prompts, n = [e.prompt_ids + e.ids for e in live], 1
    sp = SamplingParams(
        temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens, n=n, seed=seed
    )
    return backend.generate(prompts, sp)


def run_episodes(
    backend: GenerationBackend,
    tokenizer: Any,
    rows: list[dict],
    env_factory: Any,
    limits: EpisodeLimits,
    group_size: int = 1,
    params: SamplingParams | None = None,
    fmt: ToolCallFormat | None = None,
    rollout_prefix: str = "rollout",
) -> list[Episode]:
    """Run ``group_size`` episodes for each row to their end; returns them prompt-major (B*G).

    ``env_factory(row, rollout_id)`` builds each episode's environment; None runs single-turn episodes
    (one generation, the calls parsed and graded, none run). ``params`` gives temperature, top_p and the
    seed (its ``max_tokens`` and ``n`` are the limits' and the group's)."""
    params = params or SamplingParams()
    fmt = fmt or format_for(tokenizer)
    episodes, envs = start_episodes(tokenizer, rows, env_factory, group_size, rollout_prefix)
    live = list(range(len(episodes)))
    for turn in range(limits.max_episode_steps):
        live = [k for k in live if episodes[k].status == "running"]
        if not live:
            break
        room = max(limits.max_episode_tokens - len(episodes[k].ids) for k in live)
        turn_params = replace(params, max_tokens=min(limits.max_new_tokens, room))
        gens = generate_turn(backend, [episodes[k] for k in live], turn_params, turn, group_size)
        stepping: list[tuple[int, ParsedTurn]] = []
        for k, comp, lps, reason in zip(live, gens.completion_ids, gens.logprobs, gens.finish_reasons):
            ep = episodes[k]
            parsed = take_turn(ep, comp, lps, reason, tokenizer, fmt, limits)
            if ep.status != "running":
                continue
            if envs[k] is None:
                ep.end("done")
            elif parsed.calls and len(ep.calls) > limits.max_tool_calls:
                ep.end("truncated", "max_tool_calls")
            elif parsed.calls and ep.turns >= limits.max_episode_steps:
                ep.end("truncated", "max_episode_steps")  # no turn left to read the results
            else:
                stepping.append((k, parsed))
        results = step_all([envs[k] for k, _ in stepping], [t for _, t in stepping], limits.concurrency)
        last = turn == limits.max_episode_steps - 1
        for (k, _), result in zip(stepping, results):
            observe(episodes[k], result, tokenizer, limits, last)
    for ep in episodes:
        if ep.status == "running":
            ep.end("truncated", "max_episode_steps")
    return episodes


def take_turn(
    ep: Episode,
    comp: list[int],
    lps: list[float],
    reason: str,
    tokenizer: Any,
    fmt: ToolCallFormat,
    limits: EpisodeLimits,
) -> ParsedTurn:
    """Append one generated turn (cut to the episode's token budget) and parse it; a turn without its end
    token truncates the episode."""
    room = limits.max_episode_tokens - len(ep.ids)
    cut = len(comp) > room
    comp, lps = comp[:room], lps[:room]
    ep.add_generated(list(comp), list(lps))
    ep.turns += 1
    text = tokenizer.decode(comp, skip_special_tokens=True)
    parsed = fmt.parse(text, start=len(ep.calls))
    ep.calls += parsed.calls
    ep.invalid_calls += len(parsed.invalid)
    ep.final_text = parsed.content  # as plain RFT grades a completion: unstripped
    ep.messages.append(parsed.to_message())
    if cut:
        ep.end("truncated", "max_episode_tokens")
    elif reason != "stop":
        ep.end("truncated", "max_new_tokens")
    return parsed


def observe(ep: Episode, result: Any, tokenizer: Any, limits: EpisodeLimits, last: bool = False) -> None:
    """Record an environment step's outcome: discard, end, or append the observation's tokens (not after
    the ``last`` turn: nothing would read them)."""
    if isinstance(result, RolloutDiscarded):
        ep.end("discarded", str(result))
        return
    for r in result.results:
        if r.error:
            ep.tool_errors[r.error] += 1
        if r.error not in ("invalid_call", "unknown_tool"):  # nothing ran: no latency
            ep.tool_seconds.append(r.seconds)
    if result.reward is not None:
        ep.env_reward = float(result.reward)
    if result.done or last:
        ep.end("done") if result.done else ep.end("truncated", "max_episode_steps")
        return
    messages = as_messages(result.observation)
    ep.messages += messages
    obs = observation_ids(tokenizer, messages, ep.ids[-1] if ep.ids else None)
    room = limits.max_episode_tokens - len(ep.ids)
    ep.add_observation(obs[:room])  # cut: the episode ends, no token after it is generated or trained on
    if len(obs) >= room:
        ep.end("truncated", "max_episode_tokens")


# ------------------------------------------------------------------------------------ metrics


def episode_metrics(episodes: list[Episode]) -> dict[str, float]:
    """A step's ``agent/*`` figures (docs/metrics.md): per-episode means of tool calls, turns and tokens,
    the invalid-call rate, tool errors by kind, tool latency, and the truncated and discarded counts.

    >>> ep = Episode(row={}, prompt_ids=[1], rollout_id="r")
    >>> ep.add_generated([2, 3], [0.0, 0.0]); ep.turns = 1; ep.invalid_calls = 1; ep.end("truncated", "max_new_tokens")
    >>> m = episode_metrics([ep]); m["agent/invalid_call_rate"], m["agent/truncated"], m["agent/tokens_mean"]
    (1.0, 1, 2.0)
    """
    n = max(1, len(episodes))
    calls = sum(len(e.calls) for e in episodes)
    invalid = sum(e.invalid_calls for e in episodes)
    seconds = [s for e in episodes for s in e.tool_seconds]
    errors: Counter = sum((e.tool_errors for e in episodes), Counter())
    out: dict[str, float] = {
        "agent/tool_calls_mean": calls / n,
        "agent/invalid_call_rate": invalid / (calls + invalid) if calls + invalid else 0.0,
        "agent/turns_mean": sum(e.turns for e in episodes) / n,
        "agent/tokens_mean": sum(len(e.ids) for e in episodes) / n,
        "agent/generated_tokens_mean": sum(sum(e.loss_mask) for e in episodes) / n,
        "agent/tool_errors": sum(errors.values()),
        "agent/tool_seconds_mean": sum(seconds) / len(seconds) if seconds else 0.0,
        "agent/tool_seconds_max": max(seconds, default=0.0),
        "agent/truncated": sum(e.status == "truncated" for e in episodes),
        "agent/discarded": sum(e.status == "discarded" for e in episodes),
    }
    for kind, count in sorted(errors.items()):
        out[f"agent/tool_errors/{kind}"] = count
    return out
