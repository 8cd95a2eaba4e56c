"""Agent episodes in the trainers: the ``agent:`` config section, the runner it builds, and the rules that
turn episodes into rewards and advantages (GRPO, PPO, evaluation).

A run whose ``agent`` is set, or whose rows carry ``tools``, samples episodes
(:mod:`reinforge.agents.episode`) instead of single completions: prompts are rendered with the row's
``tools`` (else the configured tools' schemas), the model's calls are parsed, and with ``agent.tools``
given (Python functions or HTTP endpoints in Agent RFT's shape) they are run and answered, turn by turn.
Without executors an episode is one turn: single-turn function calling, graded on ``sample.output_tools``.

>>> AgentSettings(tools=[], max_episode_steps=1).limits(32).max_new_tokens
32
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from typing import Any, Literal

import torch
from pydantic import model_validator

from reinforge.agents.environment import ToolEnvironment
from reinforge.agents.episode import Episode, EpisodeLimits, run_episodes
from reinforge.agents.tools import load_tools, probe
from reinforge.config import Config
from reinforge.errors import ConfigError
from reinforge.models.generation import SamplingParams
from reinforge.train.losses import group_advantages


class AgentSettings(Config):
    """The ``agent:`` section of an RFT (or PPO) config: tools, episode limits and the end rules."""

    # tools the model may call: {"name", "server_url", "headers"?} (an HTTP endpoint, Agent RFT's shape) or
    # {"python": "module:function", "name"?}; a row's own `tools` list says which it is offered (and their
    # schemas); empty: calls are parsed and graded, never run (single-turn function calling)
    tools: list[dict] = []
    max_episode_steps: int = 4  # model turns per episode
    max_tool_calls: int = 8  # tool calls per episode
    max_episode_tokens: int = 256  # generated plus tool/environment tokens after the prompt
    # an episode cut by a limit: "zero" scores it 0 (trained on), "discard" leaves it out of the update
    on_truncated: Literal["zero", "discard"] = "zero"
    # a malformed call or an unknown tool: "observe" answers with an error message the model can correct
    # itself from, "end" ends the episode (it is graded as it stands)
    on_invalid_call: Literal["observe", "end"] = "observe"
    max_concurrency: int = 16  # tool calls in flight at once, over all episodes of a step
    # an environment richer than tools (a simulated user, a game): "module:function", called as
    # f(row, rollout_id) -> an Environment (reset/step: docs/agents.md); default: the tools answer
    environment: str | None = None

    @model_validator(mode="after")
    def _check(self) -> AgentSettings:
        for key in ("max_episode_steps", "max_tool_calls", "max_episode_tokens", "max_concurrency"):
            if getattr(self, key) < 1:
                raise ValueError(f"agent.{key}={getattr(self, key)}: must be >= 1")
        try:  # a bad tool spec or environment fails with the config, before any model loads
            load_tools(self.tools, "agent")
            self.environment_factory()
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return self

    def environment_factory(self) -> Any:
        """The ``environment`` callable, imported (None when not set)."""
        if self.environment is None:
            return None
        module, _, name = self.environment.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            raise ConfigError(
                f"agent.environment: cannot load {self.environment!r} ({e}); give 'module:function'"
            ) from None

    def limits(self, max_new_tokens: int) -> EpisodeLimits:
        return EpisodeLimits(
            self.max_episode_steps,
            self.max_tool_calls,
            self.max_episode_tokens,
            max_new_tokens,
            self.max_concurrency,
        )


class AgentRunner:
    """Runs a config's episodes: tools loaded (and HTTP ones probed) once, an environment per episode."""

    def __init__(self, settings: AgentSettings | None, max_new_tokens: int, source: str = "agent"):
        self.settings = settings or AgentSettings()
        self.limits = self.settings.limits(max_new_tokens)
        self.tools = load_tools(self.settings.tools, source) if self.settings.tools else {}
        if self.tools:  # an endpoint that does not answer stops the run here, before any step
            asyncio.run(probe(self.tools))
        self.schemas = [t.schema for t in self.tools.values() if t.schema]
        self.tag = uuid.uuid4().hex[:8]  # rollout ids (sent to tool endpoints) unique across runs too

    def env_factory(self):
        """``(row, rollout_id) -> Environment``, or None: single-turn episodes (no tools to run)."""
        s = self.settings
        if s.environment:
            return s.environment_factory()
        if not self.tools:
            return None
        return lambda row, rollout_id: ToolEnvironment(
            self.tools, s.max_concurrency, s.on_invalid_call, rollout_id=rollout_id
        )

    def run(self, backend, tokenizer, rows: list[dict], n: int, params: SamplingParams, prefix: str):
        """``n`` episodes per row, prompt-major; rows without ``tools`` are offered the tools' schemas.
        Rollout ids are ``<tag>-<prefix>-<row>-<sample>``."""
        if self.schemas:
            rows = [r if "tools" in r else {**r, "tools": self.schemas} for r in rows]
        return run_episodes(
            backend,
            tokenizer,
            rows,
            self.env_factory(),
            self.limits,
            n,
            params,
            rollout_prefix=f"{self.tag}-{prefix}",
        )

    def scored(self, episodes: list[Episode]) -> tuple[list[bool], list[bool]]:
        """(graded, kept) per episode. A finished episode is graded and kept; a truncated one scores 0
        ungraded and is kept (``on_truncated: zero``) or left out (``discard``); a discarded one is left out."""
        keep_truncated = self.settings.on_truncated == "zero"
        graded = [e.status == "done" for e in episodes]
        kept = [e.status == "done" or (e.status == "truncated" and keep_truncated) for e in episodes]
        return graded, kept


def agent_runner(cfg: Any, rows: list[dict]) -> AgentRunner | None:
    """The runner of ``cfg``'s episodes when it has an ``agent`` section or a row offers ``tools``; else None
    (plain completions)."""
    settings = getattr(cfg, "agent", None)
    if settings is None and not any(r.get("tools") for r in rows):
        return None
    return AgentRunner(settings, cfg.max_new_tokens)


def kept_group_advantages(
    rewards: torch.Tensor, keep: torch.Tensor | None, scale_rewards: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """GRPO's group-relative advantage over the kept episodes only; one left out gets 0.

    rewards, keep: (B, G) -> (B, G). ``keep=None`` (plain completions) is ``losses.group_advantages``.

    >>> kept_group_advantages(torch.tensor([[1.0, 0.0, 9.0]]), torch.tensor([[True, True, False]]), False)
    tensor([[ 0.5000, -0.5000,  0.0000]])
    """
    if keep is None:
        return group_advantages(rewards, scale_rewards, eps)
    k = keep.to(rewards.dtype)
    n = k.sum(1, keepdim=True)
    mean = (rewards * k).sum(1, keepdim=True) / n.clamp(min=1.0)
    adv = (rewards - mean) * k
    if scale_rewards:
        std = (((rewards - mean) ** 2 * k).sum(1, keepdim=True) / (n - 1).clamp(min=1.0)).sqrt()
        adv = adv / (std + eps)
    return adv


def generated_first(mask: torch.Tensor) -> torch.Tensor:
    """(N, T) a per-row permutation moving each row's masked (generated) positions to the front, in order.

    PPO's per-token rewards and GAE run over an episode's generated tokens as one sequence: tool and
    environment tokens are not the policy's actions, and a gap of them must not cut the return.
    ``x.gather(1, order)`` compacts a (N, T) tensor, ``y.new_zeros(y.shape).scatter(1, order, y)`` puts
    it back. A prefix mask (plain completions) gives the identity.

    >>> generated_first(torch.tensor([[1, 0, 0, 1, 0]])).tolist()
    [[0, 3, 1, 2, 4]]
    """
    return torch.argsort((mask == 0).to(torch.int8), dim=1, stable=True)


def agent_bar(metrics: dict[str, Any]) -> dict[str, Any]:
    """The progress bar's agent figures: tool calls per episode, invalid-call rate, discarded episodes."""
    if not metrics:
        return {}
    return {
        "calls": metrics["agent/tool_calls_mean"],
        "invalid": metrics["agent/invalid_call_rate"],
        "discarded": metrics["agent/discarded"],
    }


def agent_finish(run_dir: Any, records: list[dict]) -> dict[str, Any]:
    """For a run with episodes, ``agent.png`` (tool calls per episode against step, in training and
    validation) and ``summary.json``'s agent figures: episodes discarded and truncated over the run, the
    last steps' tool calls per episode and valid-call rate. {} for a run without episodes."""
    from reinforge.train.run import plot_metric

    rows = [r for r in records if r.get("kind") == "train" and "agent/tool_calls_mean" in r]
    if not rows:
        return {}
    args = ("agent/tool_calls_mean", "eval/agent/tool_calls_mean", "agent.png", "tool calls per episode")
    plot_metric(run_dir, records, *args)
    tail = rows[-5:]
    return {
        "discarded_rollouts": sum(r["agent/discarded"] for r in rows),
        "truncated_episodes": sum(r["agent/truncated"] for r in rows),
        "mean_tool_calls": sum(r["agent/tool_calls_mean"] for r in tail) / len(tail),
        "valid_call_rate": 1 - sum(r["agent/invalid_call_rate"] for r in tail) / len(tail),
    }
