"""The grader audit's maths, all pure: hacking probes built from a row, the reward figures, the flags and
the plain-words warnings. ``train/grader_audit.py`` samples the starting model and grades; this file
only turns grades into a report (``reinforge grade --audit``, and ``reinforge rft`` before step 1).

What OpenAI's RFT guide asks users to check by hand: does the starting model's reward spread (GRPO learns
only from prompts whose samples score differently), and does anything that is not an answer (nothing,
the prompt copied, the reference field names, a long text, one token repeated, a refusal) score above
what the model itself scores?

>>> row = {"messages": [{"role": "user", "content": "2+2"}], "answer": "4"}
>>> probes = probe_outputs(row)
>>> list(probes)
['empty', 'echo', 'field_names', 'long', 'repeated_token', 'refusal']
>>> probes["echo"], probes["field_names"]
('2+2', 'answer')
>>> zero_variance_fraction([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
0.5
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from reinforge.graders.base import Grade

REFUSAL = "I can't help with that."
LONG_ANSWER = " ".join(["This is a long, careful and complete answer that covers every case."] * 60)
REPEATED_TOKEN = " ".join(["yes"] * 64)
NOT_REFERENCE = ("messages", "tools")  # an RFT row's keys that are not reference fields

# probe name -> (what it is, in a sentence; what scoring above the model's own mean means)
PROBES: dict[str, tuple[str, str]] = {
    "empty": ("an empty answer", "the grader rewards saying nothing"),
    "echo": ("echoing the prompt", "the grader rewards copying the prompt"),
    "field_names": (
        "pasting the reference field names",
        "the grader rewards the field names, not their values (a template left unrendered?)",
    ),
    "long": ("a very long answer", "the grader rewards length"),
    "repeated_token": ("one token repeated", "the grader rewards repetition"),
    "refusal": ("a refusal", "the grader rewards refusing"),
}
ZERO_VARIANCE_WARN = 0.5  # warn when at least this fraction of prompts gives GRPO no signal
TOL = 1e-6  # rewards closer than this are the same score (as GRPO's reward/group_std_zero)
BARS = " ▁▂▃▄▅▆▇█"


def reference_fields(row: dict) -> list[str]:
    """A row's reference field names (every key but ``messages`` and ``tools``), in the row's order."""
    return [k for k in row if k not in NOT_REFERENCE]


def prompt_text(row: dict) -> str:
    """The text of the row's last user turn (its text parts, when the content is a list of parts)."""
    users = [m for m in row.get("messages", []) if m.get("role") == "user"] or row.get("messages", [])
    content = users[-1].get("content", "") if users else ""
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def probe_outputs(row: dict) -> dict[str, str]:
    """The output text of each probe for one row, in :data:`PROBES` order."""
    return {
        "empty": "",
        "echo": prompt_text(row),
        "field_names": " ".join(reference_fields(row)),
        "long": LONG_ANSWER,
        "repeated_token": REPEATED_TOKEN,
        "refusal": REFUSAL,
    }


def zero_variance_fraction(groups: list[list[float]], tol: float = TOL) -> float:
    """Fraction of prompts whose samples all score the same (max - min <= ``tol``): GRPO's group-relative
    advantage is 0 for every sample of such a prompt, so it learns nothing from it. 0.0 for no prompts.

    >>> zero_variance_fraction([[0.5, 0.5], [0.0, 0.0], [0.0, 1.0], [1.0, 0.25]])
    0.5
    """
    if not groups:
        return 0.0
    return sum(max(g) - min(g) <= tol for g in groups) / len(groups)


def reward_stats(values: list[float]) -> dict[str, float]:
    """Mean, population std, min and max (all 0.0 for no values).

    >>> reward_stats([0.0, 1.0])
    {'reward_mean': 0.5, 'reward_std': 0.5, 'reward_min': 0.0, 'reward_max': 1.0}
    """
    if not values:
        return dict.fromkeys(("reward_mean", "reward_std", "reward_min", "reward_max"), 0.0)
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"reward_mean": mean, "reward_std": std, "reward_min": min(values), "reward_max": max(values)}


def histogram(values: list[float], bins: int = 10) -> tuple[list[int], str]:
    """Counts of ``values`` in ``bins`` equal bins from min to max, and the counts as one line of bars.

    >>> histogram([0.0, 0.0, 0.0, 1.0], bins=4)
    ([3, 0, 0, 1], '0.00 █  ▃ 1.00')
    """
    if not values:
        return [], ""
    lo, hi = min(values), max(values)
    counts = [0] * bins
    for v in values:
        counts[0 if hi - lo <= TOL else min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    top = max(counts)
    bars = "".join(BARS[0 if c == 0 else max(1, round(c / top * (len(BARS) - 1)))] for c in counts)
    return counts, f"{lo:.2f} {bars} {hi:.2f}"


def error_counts(grades: list[Grade]) -> dict[str, int]:
    """Failed grades by error kind (the OpenAI error flag that fired; a grade may fire more than one)."""
    return dict(Counter(k for g in grades for k, v in g.errors.items() if v))


def first_error(grades: list[Grade]) -> dict[str, str] | None:
    """``{"kind", "message"}`` of the first failed grade, or None."""
    for g in grades:
        if not g.ok:
            kind = next(k for k, v in g.errors.items() if v)
            return {"kind": kind, "message": str(g.metadata.get("error") or kind)[:300]}
    return None


def flag_probes(probe_rewards: dict[str, float], model_mean: float, tol: float = TOL) -> dict[str, dict]:
    """``{probe: {"reward", "flagged"}}``: flagged when the probe's mean reward is above the model's mean.

    >>> flag_probes({"empty": 0.0, "refusal": 0.62}, 0.31)
    {'empty': {'reward': 0.0, 'flagged': False}, 'refusal': {'reward': 0.62, 'flagged': True}}
    """
    return {name: {"reward": r, "flagged": r > model_mean + tol} for name, r in probe_rewards.items()}


def audit_report(model_grades: list[list[Grade]], probe_grades: dict[str, list[Grade]]) -> dict[str, Any]:
    """The report: ``model_grades`` holds the k grades of each audited prompt's samples, ``probe_grades``
    each probe's grade on every audited prompt. Failed grades are zeros (the trainer's guard made them so).
    """
    flat = [g for group in model_grades for g in group]
    rewards = [g.reward for g in flat]
    groups = [[g.reward for g in group] for group in model_grades]
    stats = reward_stats(rewards)
    counts, line = histogram(rewards)
    zvf = zero_variance_fraction(groups)
    probe_means = {name: sum(g.reward for g in gs) / max(1, len(gs)) for name, gs in probe_grades.items()}
    probes = flag_probes(probe_means, stats["reward_mean"])
    for name, gs in probe_grades.items():
        probes[name]["errors"] = sum(not g.ok for g in gs)
    report: dict[str, Any] = {
        "prompts": len(groups),
        "samples_per_prompt": len(groups[0]) if groups else 0,
        **stats,
        "histogram": counts,
        "histogram_line": line,
        "zero_variance_fraction": zvf,
        "zero_variance_prompts": round(zvf * len(groups)),
        "grades": len(flat),
        "failed_grades": sum(not g.ok for g in flat),
        "errors": error_counts(flat),
        "first_error": first_error(flat),
        "probes": probes,
    }
    report["warnings"] = audit_warnings(report)
    return report


def audit_warnings(report: dict[str, Any]) -> list[str]:
    """What to change, in plain words, one sentence per finding ([] when nothing is wrong)."""
    out = []
    n, k, mean = report["prompts"], report["samples_per_prompt"], report["reward_mean"]
    if report["failed_grades"]:
        kinds = ", ".join(f"{kind} {c}" for kind, c in sorted(report["errors"].items()))
        first = report["first_error"] or {}
        out.append(
            f"{report['failed_grades']} of {report['grades']} grades failed ({kinds}) and count as 0: "
            f"fix the grader or the data; the first: {first.get('message', '')}"
        )
    if report["grades"] and report["reward_max"] - report["reward_min"] <= TOL:
        out.append(
            f"every sample scores {mean:.2f}: the grader gives GRPO no signal at all; make it give partial "
            "credit, or start from a model that sometimes succeeds (SFT it first)"
        )
    elif n and report["zero_variance_fraction"] >= ZERO_VARIANCE_WARN:
        out.append(
            f"all {k} samples score the same on {report['zero_variance_prompts']} of {n} prompts: the grader "
            "gives GRPO no signal; make it give partial credit or raise temperature"
        )
    for name, p in report["probes"].items():
        if p["flagged"]:
            what, meaning = PROBES.get(name, (name, "the grader rewards it"))
            out.append(f"{what} scores {p['reward']:.2f}, above the model's {mean:.2f}: {meaning}")
    return out


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report in a few lines, for a terminal."""
    n, k = report["prompts"], report["samples_per_prompt"]
    errors = ", ".join(f"{kind} {c}" for kind, c in sorted(report["errors"].items())) or "none"
    probes = ", ".join(
        f"{name} {p['reward']:.2f}{' (FLAGGED)' if p['flagged'] else ''}"
        for name, p in report["probes"].items()
    )
    flagged = sum(p["flagged"] for p in report["probes"].values())
    lines = [
        f"grader audit: {n} prompts x {k} samples of the starting model"
        + (f" ({report['seconds']:.1f} s)" if "seconds" in report else ""),
        f"  reward mean {report['reward_mean']:.3f}  std {report['reward_std']:.3f}  "
        f"min {report['reward_min']:.3f}  max {report['reward_max']:.3f}   {report['histogram_line']}",
        f"  same score for all {k} samples: {report['zero_variance_prompts']} of {n} prompts "
        f"(zero_variance_fraction {report['zero_variance_fraction']:.2f}); grader errors: {errors}",
        f"  probes: {probes}; {flagged or 'none'} above the model's mean {report['reward_mean']:.2f}",
    ]
    return lines + [f"  warning: {w}" for w in report["warnings"]]
