"""Rollouts: sample a group of completions per prompt, grade them, and pack the batch for the update."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from reinforge.graders.base import Grade, Grader, GraderError, make_sample
from reinforge.models.chat import encode_row
from reinforge.models.generation import GenerationBackend, SamplingParams
from reinforge.train import distributed
from reinforge.train.agent import AgentRunner, agent_runner
from reinforge.train.batching import batch_indices


@dataclass
class Rollout:
    """N = B*G sequences, prompt-major. Tensors are (N, P+T) or (N, T); T = longest completion."""

    input_ids: torch.Tensor  # (N, P+T) left-padded prompt, then right-padded completion
    attention_mask: torch.Tensor  # (N, P+T)
    completion_mask: torch.Tensor  # (N, T) 1 on completion tokens (EOS included)
    sample_logps: torch.Tensor  # (N, T) log-probs the sampler saw
    rewards: torch.Tensor  # (B, G)
    grades: list[Grade]
    texts: list[str]
    gen_seconds: float
    grade_seconds: float
    # episodes: 1 on the tokens the policy loss and the KL see (generated, not tool/environment tokens),
    # 0 throughout an episode left out of the update; None: the completion_mask
    loss_mask: torch.Tensor | None = None  # (N, T)
    keep: torch.Tensor | None = None  # (B, G) False: an episode left out of the advantages and the update
    agent: dict = field(default_factory=dict)  # the step's agent/* metrics (episodes only)

    @property
    def n_completion(self) -> int:
        return self.completion_mask.shape[1]

    @property
    def token_mask(self) -> torch.Tensor:
        """(N, T) the tokens the losses see."""
        return self.completion_mask if self.loss_mask is None else self.loss_mask


def grade_safely(grader: Grader, pairs: list[tuple[dict, dict]]) -> list[Grade]:
    """Grade a batch; a grader that raises or returns NaN scores 0 with an error, never stops training."""
    try:
        grades = grader.grade_batch(pairs)
    except Exception as e:
        return [Grade(0.0, {"error": f"{type(e).__name__}: {e}"}, {"grader_error": True}) for _ in pairs]
    out = []
    for g in grades:
        r = g.reward
        if r is None or not isinstance(r, int | float) or not math.isfinite(float(r)):
            out.append(
                Grade(
                    0.0, {**g.metadata, "error": f"non-finite reward {r!r}"}, {**g.errors, "nan_reward": True}
                )
            )
        else:
            out.append(g)
    return out


def collect_rollout(
    backend: GenerationBackend,
    grader: Grader,
    rows: list[dict],
    prompt_ids: list[list[int]],
    params: SamplingParams,
    pad_id: int,
) -> Rollout:
    G = params.n
    t0 = time.perf_counter()
    gens = backend.generate(prompt_ids, params)
    t1 = time.perf_counter()
    pairs = [(rows[i // G], make_sample(text)) for i, text in enumerate(gens.texts)]
    grades = grade_safely(grader, pairs)
    t2 = time.perf_counter()
    rewards = torch.tensor([g.reward for g in grades], dtype=torch.float32).view(len(rows), G)

    prompts = [prompt_ids[k // G] for k in range(len(gens.completion_ids))]
    tensors = pack(prompts, gens.completion_ids, gens.logprobs, pad_id)
    return Rollout(*tensors, rewards, grades, gens.texts, t1 - t0, t2 - t1)


def pack(
    prompts: list[list[int]], completions: list[list[int]], logprobs: list[list[float]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, completion_mask, sample_logps) of N rows [left-padded prompt |
    right-padded completion], so every completion starts at column P. Rows are built as Python lists and
    converted once (a tensor op per row costs more than the row)."""
    P = max(len(p) for p in prompts)
    T = max(1, max(len(c) for c in completions))
    ids, attn, cmask, slogp = [], [], [], []
    for p, comp, lps in zip(prompts, completions, logprobs):
        pad_p, pad_c = P - len(p), T - len(comp)
        ids.append([pad_id] * pad_p + list(p) + list(comp) + [pad_id] * pad_c)
        attn.append([0] * pad_p + [1] * (len(p) + len(comp)) + [0] * pad_c)
        cmask.append([1] * len(comp) + [0] * pad_c)
        slogp.append(list(lps) + [0.0] * pad_c)
    return (
        torch.tensor(ids, dtype=torch.long),
        torch.tensor(attn, dtype=torch.long),
        torch.tensor(cmask, dtype=torch.long),
        torch.tensor(slogp, dtype=torch.float32),
    )


def grade_episodes(
    runner: AgentRunner, grader: Grader, rows: list[dict], episodes: list
) -> tuple[list, list]:
    """(grades, kept) of ``episodes`` (``len(episodes) // len(rows)`` per row, prompt-major): finished ones
    are graded on the whole episode; the others score 0 ungraded, kept or not by ``runner``'s rules."""
    G = len(episodes) // len(rows)
    graded, kept = runner.scored(episodes)
    todo = [k for k in range(len(episodes)) if graded[k]]
    got = grade_safely(grader, [(rows[k // G], episodes[k].sample()) for k in todo])
    grades = [Grade(0.0, {"episode": e.status, "why": e.truncation}) for e in episodes]
    for k, g in zip(todo, got):
        grades[k] = g
    return grades, kept


def collect_episodes(
    runner: AgentRunner,
    backend: Any,
    tokenizer,
    grader: Grader,
    rows: list[dict],
    params: SamplingParams,
    prefix: str,
) -> Rollout:
    """:func:`collect_rollout` for agent episodes: ``params.n`` episodes per row, graded whole; the
    completion is everything after the prompt, and ``loss_mask`` keeps only the generated tokens of kept
    episodes."""
    from reinforge.agents.episode import episode_metrics

    G = params.n
    t0 = time.perf_counter()
    episodes = runner.run(backend, tokenizer, rows, G, params, prefix)
    t1 = time.perf_counter()
    grades, kept = grade_episodes(runner, grader, rows, episodes)
    t2 = time.perf_counter()
    tensors = pack(
        [e.prompt_ids for e in episodes],
        [e.ids for e in episodes],
        [e.logprobs for e in episodes],
        backend.pad_id,
    )
    T = tensors[2].shape[1]
    lmask = [e.loss_mask + [0] * (T - len(e.ids)) if keep else [0] * T for e, keep in zip(episodes, kept)]
    return Rollout(
        *tensors,
        torch.tensor([g.reward for g in grades], dtype=torch.float32).view(len(rows), G),
        grades,
        [e.final_text for e in episodes],
        t1 - t0,
        t2 - t1,
        loss_mask=torch.tensor(lmask, dtype=torch.long),
        keep=torch.tensor(kept).view(len(rows), G),
        agent=episode_metrics(episodes),
    )


# ------------------------------------------------------------------------------- a grader that fails

GRADER_ERROR_PATIENCE = 3  # steps in a row over the limit that stop a run after its first step


class StepRollouts:
    """Phases 1-2 of an on-policy step (GRPO, PPO): ``rollouts(step, n)`` draws the step's
    ``cfg.prompts_per_step`` train rows (:func:`batch_indices`), samples ``n`` completions of each at
    ``cfg``'s temperature, top_p and max_new_tokens with a seed per step, and grades them. Every train
    row's prompt is encoded once, here. Under data parallel each rank samples its block of the step's
    rows (whole groups) with a seed of its own."""

    def __init__(self, backend: Any, grader: Grader, rows: list[dict], tokenizer, cfg):
        # backend: a GenerationBackend with the ``pad_id`` its rollouts are packed with (HF, vLLM)
        self.backend, self.grader, self.rows, self.cfg = backend, grader, rows, cfg
        self.tokenizer = tokenizer
        # episodes instead of completions when cfg has an agent section or the rows offer tools
        self.agent = agent_runner(cfg, rows)
        self.prompt_ids = [] if self.agent else [encode_row(tokenizer, r) for r in rows]

    def __call__(self, step: int, n: int, shard: tuple[int, int] | None = None) -> Rollout:
        # shard: (rank, world size) of the block to sample; default: this process's (train/distributed.py)
        cfg = self.cfg
        rank, world = shard or (distributed.rank(), distributed.world_size())
        idx = batch_indices(step, cfg.prompts_per_step, len(self.rows), cfg.seed)
        lo, hi = distributed.shard_range(len(idx), (rank, world))  # data parallel: whole groups
        idx = idx[lo:hi]
        params = SamplingParams(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=cfg.max_new_tokens,
            n=n,
            seed=(cfg.seed * 1_000_003 + step) * world + rank,
        )
        rows = [self.rows[i] for i in idx]
        if self.agent:
            return collect_episodes(
                self.agent, self.backend, self.tokenizer, self.grader, rows, params, f"step{step}"
            )
        prompts = [self.prompt_ids[i] for i in idx]
        return collect_rollout(self.backend, self.grader, rows, prompts, params, self.backend.pad_id)


def first_error(grades: list[Grade]) -> tuple[str, str] | None:
    """``(kind, message)`` of the first failed grade: its OpenAI error flag and its text; None if none failed."""
    for g in grades:
        if not g.ok:
            kind = next(k for k, v in g.errors.items() if v)
            return kind, str(g.metadata.get("error") or kind)
    return None


def grader_error_fields(grades: list[Grade]) -> dict:
    """A train record's ``grader/errors`` count, plus the first error's kind and message when any failed."""
    err = first_error(grades)
    fields: dict = {"grader/errors": sum(not g.ok for g in grades)}
    if err:
        fields["grader/error_kind"], fields["grader/error_message"] = err[0], err[1][:500]
    return fields


def grader_error_summary(train_records: list[dict]) -> dict:
    """``grader_errors`` (failed grades over the run) and ``first_grader_error`` ({step, kind, message})."""
    first = next((r for r in train_records if r.get("grader/errors")), None)
    return {
        "grader_errors": sum(r.get("grader/errors") or 0 for r in train_records),
        "first_grader_error": first
        and {
            "step": first["step"],
            "kind": first.get("grader/error_kind"),
            "message": first.get("grader/error_message"),
        },
    }


class GraderErrorGuard:
    """Stops a run whose grader fails, instead of training on recorded zeros.

    ``check(step, grades)`` after each step's grading raises :class:`GraderError` when the fraction of
    failed grades is over ``max_fraction`` (None: only when every grade failed) on the first step this
    process runs, or on ``GRADER_ERROR_PATIENCE`` steps in a row later. ``max_fraction=1`` never stops.
    """

    def __init__(
        self, grader_name: str, max_fraction: float | None = None, option: str = "max_grader_error_fraction"
    ):
        self.name, self.max_fraction, self.option = grader_name, max_fraction, option
        self.steps = self.over_in_a_row = self.total_errors = 0
        self.last = ""

    def over(self, n_errors: int, n: int) -> bool:
        if self.max_fraction is None:
            return n > 0 and n_errors == n
        return n_errors > self.max_fraction * n

    def check(self, step: int, grades: list[Grade]) -> None:
        n_err = sum(not g.ok for g in grades)
        self.steps += 1
        self.total_errors += n_err
        self.last = f"{n_err}/{len(grades)}"
        self.over_in_a_row = self.over_in_a_row + 1 if self.over(n_err, len(grades)) else 0
        if self.over_in_a_row and (self.steps == 1 or self.over_in_a_row >= GRADER_ERROR_PATIENCE):
            kind, message = first_error(grades) or ("other_error", "")
            when = "the first step" if self.steps == 1 else f"{self.over_in_a_row} steps in a row"
            limit = "all" if self.max_fraction is None else f"more than {self.max_fraction:g}"
            raise GraderError(
                f"grader '{self.name}' failed on {n_err}/{len(grades)} grades at step {step} ({when}; "
                f"the limit is {limit}): {kind}: {message}; fix the grader or the data, or set "
                f"{self.option} (--set {self.option}=1 never stops)",
                kind,
                message,
            )

    fields = staticmethod(grader_error_fields)  # a train record's grader/* fields
    summary = staticmethod(grader_error_summary)  # summary.json's grader_errors and first_grader_error

    def bar_fields(self) -> dict[str, str]:
        """``{"grader_err": "3/64"}`` (the last step's failed grades) once any grade of the run has failed."""
        return {"grader_err": self.last} if self.total_errors else {}


def first_row_where(path: str | None, fallback: str) -> str:
    """``file:line`` of a JSONL file's first row (what a run grades first), else ``fallback``."""
    if not path or not str(path).endswith(".jsonl"):
        return fallback
    from reinforge.data.jsonl import iter_jsonl

    return f"{path}:{next(iter(iter_jsonl(path)))[0]}"


def preflight_grader(cfg, train_rows: list[dict], val_rows: list[dict]) -> None:
    """Refuse, before any model is loaded, a grader spec (``cfg.grader``) whose templates miss fields of the
    first training or validation row; the error names the grader, the template, the field and the row."""
    from reinforge.graders.registry import load_spec
    from reinforge.graders.templating import check_rows

    if cfg.grader is None or not train_rows:
        return
    src = cfg.train_file or f"task {cfg.task}"
    split = bool(cfg.validation_split and not cfg.validation_file)  # shuffled: no line to name
    rows = [
        (first_row_where(None if split else cfg.train_file, f"{src} (first training row)"), train_rows[0])
    ]
    if val_rows:
        val_src = cfg.validation_file or src
        rows.append((first_row_where(cfg.validation_file, f"{val_src} (first validation row)"), val_rows[0]))
    check_rows(load_spec(cfg.grader), rows)


def grader_guard(
    cfg, grader: Grader, train_rows: list[dict], val_rows: list[dict], reward_fn=None
) -> GraderErrorGuard:
    """A trainer's start: ``cfg.grader``'s templates checked on the first rows (unless ``reward_fn`` or a
    reward model replaces it), then the guard that stops the run if the grader keeps failing."""
    if reward_fn is None and not getattr(cfg, "reward_model", None):
        preflight_grader(cfg, train_rows, val_rows)
    return GraderErrorGuard(getattr(grader, "name", "grader"), cfg.max_grader_error_fraction)
