"""Rollouts: sample a group of completions per prompt, grade them, and pack the batch for the update."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from reinforge.graders.base import Grade, Grader, make_sample
from reinforge.models.generation import GenerationBackend, SamplingParams


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

    @property
    def n_completion(self) -> int:
        return self.completion_mask.shape[1]


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

    # pack: [left-padded prompt | right-padded completion] so every completion starts at column P;
    # rows are built as Python lists and converted once (a tensor op per row costs more than the row)
    P = max(len(p) for p in prompt_ids)
    T = max(1, max(len(c) for c in gens.completion_ids))
    ids, attn, cmask, slogp = [], [], [], []
    for k, (comp, lps) in enumerate(zip(gens.completion_ids, gens.logprobs)):
        p = prompt_ids[k // G]
        pad_p, pad_c = P - len(p), T - len(comp)
        ids.append([pad_id] * pad_p + list(p) + list(comp) + [pad_id] * pad_c)
        attn.append([0] * pad_p + [1] * (len(p) + len(comp)) + [0] * pad_c)
        cmask.append([1] * len(comp) + [0] * pad_c)
        slogp.append(list(lps) + [0.0] * pad_c)
    return Rollout(
        torch.tensor(ids, dtype=torch.long),
        torch.tensor(attn, dtype=torch.long),
        torch.tensor(cmask, dtype=torch.long),
        torch.tensor(slogp, dtype=torch.float32),
        rewards,
        grades,
        gens.texts,
        t1 - t0,
        t2 - t1,
    )
