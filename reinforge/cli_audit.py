"""``reinforge grade --audit CONFIG.yaml [--set KEY=VALUE] [--json]``: the grader audit of an RFT config,
alone, before any training (the audit: ``train/grader_audit.py``; its maths: ``graders/audit.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from reinforge.config import load_config
from reinforge.errors import ConfigError


def grade_audit(
    config: Path | None, overrides: list[str], as_json: bool, other_options: bool
) -> dict[str, Any]:
    """Audit ``config``'s grader on its starting model; print the summary (``as_json``: one JSON object)."""
    from reinforge.graders.audit import summary_lines
    from reinforge.train.grader_audit import audit_config
    from reinforge.train.grpo import GRPOConfig, load_grader  # torch and transformers: only audits need them

    if config is None:
        raise ConfigError("grade: --set and --json go with --audit CONFIG.yaml (an RFT config, as rft takes)")
    if other_options:
        raise ConfigError(
            f"grade --audit {config}: the grader and the data come from the config; drop --grader, --input, "
            "--output and --validate"
        )
    cfg = load_config(GRPOConfig, config, overrides)
    report = audit_config(cfg, load_grader(cfg))
    typer.echo(json.dumps(report, ensure_ascii=False) if as_json else "\n".join(summary_lines(report)))
    return report
