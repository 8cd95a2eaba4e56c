"""The grader audit before training: sample the starting model k times on the first training prompts, as
a GRPO step samples, grade the samples and the hacking probes through the trainer's guard (a grader
failure is a counted zero), and report (the maths: ``graders/audit.py``).

``reinforge rft`` runs it before step 1 (:func:`preflight`; ``audit: false`` or ``--skip-audit`` skips
it; the service's jobs skip it unless ``method.reinforge`` sets ``audit: true``), writes ``audit.json``
into the run directory and the headline figures into ``summary.json``. ``reinforge grade --audit
CONFIG.yaml`` runs it alone (:func:`audit_config`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch

from reinforge.errors import ConfigError
from reinforge.graders.audit import PROBES, audit_report, probe_outputs, prompt_text, summary_lines
from reinforge.graders.base import Grader, make_sample
from reinforge.models.chat import encode_prompt, prompt_messages
from reinforge.models.generation import SamplingParams
from reinforge.models.vllm_backend import make_backend
from reinforge.train.batching import batch_indices, load_prompt_rows
from reinforge.train.progress import console
from reinforge.train.rollout import collect_rollout, grade_safely, preflight_grader
from reinforge.train.warmup import load_model

AUDIT_FILE = "audit.json"
NO_EPISODES = "agent episodes (an `agent` section, or rows with tools) are not audited yet"


def samples_episodes(cfg: Any, rows: list[dict]) -> bool:
    """Whether the run samples agent episodes rather than single completions (what the audit samples)."""
    return getattr(cfg, "agent", None) is not None or any(r.get("tools") for r in rows)


def audit_prompts(rows: list[dict], n: int, seed: int) -> list[dict]:
    """The first ``n`` prompts a run with ``seed`` trains on (its first steps' rows), none twice."""
    return [rows[i] for i in batch_indices(1, min(n, len(rows)), len(rows), seed)]


def audit_grader(backend, tokenizer, grader: Grader, rows: list[dict], cfg: Any) -> dict[str, Any]:
    """Sample ``cfg.audit_samples`` completions of each of ``rows`` at the run's temperature, top_p and
    max_new_tokens, grade them, grade every probe on every row; the report of ``graders/audit.py``."""
    t0 = time.perf_counter()
    k = cfg.audit_samples
    prompts = [encode_prompt(tokenizer, prompt_messages(r)) for r in rows]
    params = SamplingParams(
        temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens, n=k, seed=cfg.seed
    )
    with torch.random.fork_rng(devices=[]):  # the run's random state is left as the audit found it
        roll = collect_rollout(backend, grader, rows, prompts, params, backend.pad_id)
    model_grades = [roll.grades[i * k : (i + 1) * k] for i in range(len(rows))]
    # 2. the probes: every probe on every row, in one batch (a grader's pool or client serves it at once)
    pairs = [(row, make_sample(text)) for row in rows for text in probe_outputs(row).values()]
    grades = grade_safely(grader, pairs)
    probe_grades = {name: grades[j :: len(PROBES)] for j, name in enumerate(PROBES)}
    report = audit_report(model_grades, probe_grades)
    report.update(
        model=str(cfg.model),
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        examples=[  # what the model writes, to read beside the figures
            {"prompt": prompt_text(rows[i]), "output": roll.texts[i * k], "reward": roll.grades[i * k].reward}
            for i in range(min(3, len(rows)))
        ],
        seconds=round(time.perf_counter() - t0, 2),
    )
    return report


def summary_fields(report: dict[str, Any]) -> dict[str, Any]:
    """``summary.json``'s ``audit`` entry: the headline figures and the flagged probes."""
    return {
        "audit": {
            "reward_mean": round(report["reward_mean"], 4),
            "zero_variance_fraction": round(report["zero_variance_fraction"], 4),
            "failed_grades": report["failed_grades"],
            "flagged": [name for name, p in report["probes"].items() if p["flagged"]],
        }
    }


def preflight(cfg: Any, run: Any, backend, tokenizer, grader: Grader, rows: list[dict]) -> dict[str, Any]:
    """``reinforge rft``'s audit before step 1 (when ``cfg.audit``): printed in a few lines, written to
    ``audit.json``; returns the summary's fields ({} when off). A resumed run reads its ``audit.json``
    back instead of auditing again; only the main process audits."""
    path = run.dir / AUDIT_FILE
    if run.start > 0:
        return summary_fields(json.loads(path.read_text())) if path.exists() else {}
    if not cfg.audit or not run.is_main:
        return {}
    if samples_episodes(cfg, rows):  # single completions would misjudge a grader of whole episodes
        if cfg.progress:
            console.print(f"grader audit skipped: {NO_EPISODES}", markup=False, highlight=False)
        return {}
    report = audit_grader(backend, tokenizer, grader, audit_prompts(rows, cfg.audit_prompts, cfg.seed), cfg)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    if cfg.progress:
        for line in summary_lines(report):
            console.print(line, markup=False, highlight=False, soft_wrap=True)  # no wrap at 80 columns
    return summary_fields(report)


def audit_config(cfg: Any, grader: Grader) -> dict[str, Any]:
    """``reinforge grade --audit``: the audit of an RFT config (``GRPOConfig``) with its ``grader``, on its
    starting model; a template naming a field the rows lack fails first, before the model loads."""
    train_rows, val_rows = load_prompt_rows(cfg)
    if samples_episodes(cfg, train_rows):
        raise ConfigError(f"grade --audit: {NO_EPISODES}; the audit samples single completions")
    preflight_grader(cfg, train_rows, val_rows)
    policy, tok = load_model(cfg.model, dtype=None if cfg.dtype == "auto" else cfg.dtype, device=cfg.device)
    backend = make_backend(cfg.generation_backend, policy, tok, cfg.compile_decode)
    try:
        return audit_grader(backend, tok, grader, audit_prompts(train_rows, cfg.audit_prompts, cfg.seed), cfg)
    finally:
        grader.close()
