"""The RLHF loop: SFT once, then ``rounds`` x (sample pairs -> label -> reward model -> PPO).

Each round samples two responses per prompt from the *current* policy, asks a :class:`Labeller`
which is better, retrains the reward model on every label so far, and runs PPO from the current
policy (the KL reference stays the SFT model). Labellers (``train/labellers.py``): a grader, a Python
function, files (``labeller: {type: queue}``), or people in the web UI of ``reinforge serve``
(a ``labelers`` section: ``train/service_labeller.py``).

Every stage writes its own run directory under ``output_dir`` (``sft/``, ``round-1/rm``,
``round-1/ppo``...); a stage whose ``summary.json`` exists is skipped, so ``--resume`` continues.
A round's comparison requests are kept in ``round-N/requests.jsonl``, so a resumed round asks the same.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from reinforge.config import Config, validate_section
from reinforge.errors import ConfigError, ReinforgeError
from reinforge.train.labellers import (
    ComparisonRequest,
    FunctionLabeller,
    GraderLabeller,
    Labeller,
    QueueLabeller,
    check_labeller,
)
from reinforge.train.ppo import PPOConfig
from reinforge.train.reward import RMConfig
from reinforge.train.service_labeller import ServiceLabeller, check_labelers
from reinforge.train.sft_trainer import SFTConfig

__all__ = [
    "ComparisonRequest",
    "FunctionLabeller",
    "GraderLabeller",
    "Labeller",
    "QueueLabeller",
    "RLHFConfig",
]


def build_labeller(spec: dict, task: str | None, labelers: dict | None = None, seed: int = 0) -> Labeller:
    if labelers is not None:
        return ServiceLabeller(labelers, seed=seed)
    try:
        check_labeller(spec)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if spec.get("type", "grader") == "grader":
        grader = spec.get("grader")
        if grader is None:
            if not task:
                raise ConfigError(
                    "labeller.grader: give a grader spec (or set task to use the task's grader)"
                )
            from reinforge.tasks import get_task

            grader = get_task(task).grader
        return GraderLabeller(grader)
    return QueueLabeller(
        spec["path"],
        int(spec.get("min_labels", 64)),
        float(spec.get("poll_seconds", 5)),
        float(spec.get("timeout_seconds", 86_400)),
    )


class RLHFConfig(Config):
    """The loop's own knobs; ``sft``, ``rm`` and ``ppo`` hold the stage configs (their fields, minus paths)."""

    sections: ClassVar[dict[str, type[Config]]] = {"sft": SFTConfig, "rm": RMConfig, "ppo": PPOConfig}
    section_fixed: ClassVar[dict[str, tuple[str, ...]]] = {
        "sft": ("output_dir",),
        "rm": ("output_dir",),
        "ppo": ("model", "init_from", "reward_model", "output_dir"),
    }
    model: str = "tiny:sentiment:1m"  # the SFT model (or the base model when ``sft`` is given)
    task: str | None = "sentiment"  # prompts (when no prompts_file) and the default labeller grader
    prompts_file: str | None = None  # RFT JSONL whose messages are the prompts
    output_dir: str = "runs/rlhf"  # run directory; stages under sft/, round-N/rm, round-N/ppo
    seed: int = 0  # seed of prompt order and sampling
    rounds: int = 2  # rounds of sample pairs -> label -> reward model -> PPO
    comparisons_per_round: int = 256  # prompts per round, two sampled responses each
    max_new_tokens: int = 32  # most tokens per sampled response
    temperature: float = 1.0  # sampling temperature of the compared responses
    labeller: dict = {
        "type": "grader"
    }  # {"type": "grader", "grader": spec} | {"type": "queue", "path": dir, ...}
    labelers: dict | None = (
        None  # people in the web UI: {server, key_env, annotators, annotators_per_item, ...}
    )
    sft: dict | None = None  # SFTConfig fields: run SFT on ``model`` first
    rm: dict = {}  # RMConfig fields; model defaults to the SFT model (causal LM backbone)
    ppo: dict = {}  # PPOConfig fields
    rm_backbone: Literal["sft", "config"] = "sft"  # sft: the reward model starts from the SFT model

    @model_validator(mode="after")
    def _check(self) -> RLHFConfig:
        if not (self.prompts_file or self.task):
            raise ValueError("give prompts_file (RFT JSONL whose messages are the prompts) or task")
        for name, keys in self.section_fixed.items():
            for key in set(getattr(self, name) or {}) & set(keys):
                raise ValueError(f"{name}.{key}: the RLHF loop sets it for each stage; remove it")
        check_labeller(self.labeller)  # (a grader labeller without a grader needs task: checked when built)
        if self.labelers is not None:
            check_labelers(self.labelers)
            if self.labeller != {"type": "grader"}:
                raise ValueError("labeller and labelers: give one (labelers: people in the web UI)")
        # each stage's whole config, now: a bad ppo key must not wait for minutes of SFT and sampling
        if self.sft is not None:
            sft_config(self, Path("sft"))
        rm_config(self, "sft", Path("rm"))
        ppo_config(self, "sft", "sft", "rm", Path("ppo"))
        return self


def sft_config(cfg: RLHFConfig, out: Path) -> SFTConfig:
    fields = {"model": cfg.model, "task": cfg.task, **(cfg.sft or {}), "output_dir": str(out)}
    return validate_section(SFTConfig, fields, "sft")


def rm_config(cfg: RLHFConfig, sft_model: str, out: Path) -> RMConfig:
    model = sft_model if cfg.rm_backbone == "sft" else "minilm"
    return validate_section(RMConfig, {"model": model, **cfg.rm, "output_dir": str(out)}, "rm")


def ppo_config(cfg: RLHFConfig, sft_model: str, policy: str, reward_model: str, out: Path) -> PPOConfig:
    """PPO from ``policy``; the KL reference stays the SFT model."""
    fields = {
        "task": cfg.task,
        "train_file": cfg.prompts_file,
        **cfg.ppo,
        "model": sft_model,
        "init_from": None if policy == sft_model else policy,
        "reward_model": reward_model,
        "output_dir": str(out),
    }
    return validate_section(PPOConfig, fields, "ppo")


def sample_comparisons(
    policy, tok, rows: list[dict], max_new_tokens: int, temperature: float, seed: int, tag: str = ""
) -> list[ComparisonRequest]:
    """Two distinct sampled responses per row (rows whose two samples are identical are dropped)."""
    from reinforge.models.chat import encode_row, prompt_messages
    from reinforge.models.generation import HFBackend, SamplingParams

    backend = HFBackend(policy, tok)
    out = []
    for i in range(0, len(rows), 128):
        chunk = rows[i : i + 128]
        gens = backend.generate(
            [encode_row(tok, r) for r in chunk],
            SamplingParams(temperature=temperature, max_tokens=max_new_tokens, n=2, seed=seed + i),
        )
        for k, r in enumerate(chunk):
            a, b = gens.texts[2 * k], gens.texts[2 * k + 1]
            if a.strip() and b.strip() and a.strip() != b.strip():
                out.append(ComparisonRequest(f"{tag}{i + k}", r, prompt_messages(r), [a, b]))
    return out


def load_requests(path: Path) -> list[ComparisonRequest] | None:
    """A round's comparison requests as sampled before (None when it has not sampled yet)."""
    from reinforge.data.jsonl import read_jsonl

    return [ComparisonRequest(**row) for row in read_jsonl(path)] if path.exists() else None


def last_train_record(run_dir: Path) -> dict:
    from reinforge.data.jsonl import read_jsonl

    path = run_dir / "metrics.jsonl"
    records = [r for r in read_jsonl(path) if r.get("kind") == "train"] if path.exists() else []
    return records[-1] if records else {}


def run_rlhf(cfg: RLHFConfig, resume: bool = False, labeller: Labeller | None = None) -> dict[str, Any]:
    from reinforge.data.jsonl import write_jsonl
    from reinforge.data.preferences import pair_rows, to_pairs
    from reinforge.data.rft import load_rft_rows
    from reinforge.tasks import get_task
    from reinforge.train.batching import split_rankings
    from reinforge.train.ppo import train_ppo
    from reinforge.train.progress import print_table
    from reinforge.train.reward import train_reward_model
    from reinforge.train.run import write_summary
    from reinforge.train.sft_trainer import train_sft
    from reinforge.train.warmup import load_model

    t0 = time.time()
    out = Path(cfg.output_dir)
    if out.exists() and (out / "summary.json").exists() and not resume:
        raise ReinforgeError(f"{out}: a finished RLHF run is there; choose another output_dir")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(cfg.to_yaml())
    done = lambda d: (d / "summary.json").exists()  # noqa: E731
    # 0. SFT
    sft_model = cfg.model
    if cfg.sft is not None:
        sft_dir = out / "sft"
        if not done(sft_dir):
            train_sft(sft_config(cfg, sft_dir), resume=sft_dir.exists())
        sft_model = str(sft_dir / "final")
    if cfg.prompts_file:
        rows = load_rft_rows(cfg.prompts_file)
    elif cfg.task:
        rows = get_task(cfg.task).make_rows(
            cfg.rounds * cfg.comparisons_per_round, seed=cfg.seed + 7, split="train"
        )
    else:
        raise ConfigError("rlhf: give prompts_file or task")
    labeller = labeller or build_labeller(cfg.labeller, cfg.task, cfg.labelers, cfg.seed)
    labeller.start(out)
    policy_path, labels, rounds = sft_model, [], []
    for k in range(1, cfg.rounds + 1):
        rdir = out / f"round-{k}"
        rdir.mkdir(exist_ok=True)
        pref_file = rdir / "preferences.jsonl"
        # 1-2. sample from the current policy, then label
        if not pref_file.exists():
            requests = load_requests(rdir / "requests.jsonl")
            if requests is None:  # not sampled yet (a resumed round asks the same)
                policy, tok = load_model(policy_path)
                start = ((k - 1) * cfg.comparisons_per_round) % max(1, len(rows))
                chunk = (rows * 2)[start : start + cfg.comparisons_per_round]
                requests = sample_comparisons(
                    policy, tok, chunk, cfg.max_new_tokens, cfg.temperature, cfg.seed * 1000 + k, tag=f"r{k}-"
                )
                write_jsonl(rdir / "requests.jsonl", [vars(r) for r in requests])
            new = labeller.label(requests, k)
            write_jsonl(pref_file, pair_rows(to_pairs(new)))
        from reinforge.data.preferences import load_preferences

        labels += load_preferences(pref_file, allow_duplicates=True) if pref_file.stat().st_size else []
        if len(labels) < 4:
            raise ReinforgeError(
                f"round {k}: only {len(labels)} preference labels so far; the reward model needs more"
            )
        # 3. reward model on every label so far
        rm_dir = rdir / "rm"
        if not done(rm_dir):
            train, val = split_rankings(labels, cfg.rm.get("validation_split", 0.1), cfg.seed)
            train_reward_model(
                rm_config(cfg, sft_model, rm_dir), resume=rm_dir.exists(), train_rows=train, val_rows=val
            )
        rm_summary = json.loads((rm_dir / "summary.json").read_text())
        # 4. PPO from the current policy, reference = the SFT model
        ppo_dir = rdir / "ppo"
        if not done(ppo_dir):
            ppo_cfg = ppo_config(cfg, sft_model, policy_path, rm_summary["reward_model"], ppo_dir)
            train_ppo(ppo_cfg, resume=(ppo_dir / "checkpoints").exists())
        ppo_summary = json.loads((ppo_dir / "summary.json").read_text())
        policy_path = str(ppo_dir / "final")
        last = last_train_record(ppo_dir)  # PPO's figures without a validation set: its last step's
        figures = {
            "rm_val_accuracy": rm_summary.get("val_accuracy"),
            "ppo_reward": v
            if (v := ppo_summary.get("final_val_reward")) is not None
            else last.get("reward/score"),
            "kl": v if (v := ppo_summary.get("final_kl")) is not None else last.get("kl/seq"),
        }
        if not (rdir / "reported").exists():
            labeller.report(k, figures, policy_path)
            (rdir / "reported").touch()
        rounds.append(
            {
                "round": k,
                "labels_total": len(labels),
                **figures,
                "eval_grader": ppo_summary.get("final_eval_grader"),
                **labeller.metrics(k),
            }
        )
    summary = {
        "algorithm": "rlhf",
        "rounds": rounds,
        "final_model": policy_path,
        "sft_model": sft_model,
        "seconds": round(time.time() - t0, 1),
        "run_dir": str(out),
    }
    write_summary(out, summary)
    for r in rounds:
        print_table(f"rlhf round {r['round']}", {k: v for k, v in r.items() if v is not None})
    return summary
