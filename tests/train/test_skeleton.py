"""The run skeleton: its contract on a toy trainer (cadence, sinks, stop and resume, summary), and the one
CLI entry, which refuses to start afresh over an unfinished run for every trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
import torch

from reinforge.config import Config
from reinforge.errors import ReinforgeError
from reinforge.train.checkpoint import list_checkpoints, load_trainer_state
from reinforge.train.registry import TRAINERS, run_from_cli
from reinforge.train.skeleton import Run

# the least each config needs to validate (a data source), so the guard is what refuses
MINIMAL = {"rft": ["task=addition"], "ppo": ["task=addition"], "sft": ["task=addition"], "dpo": [], "rm": []}


@pytest.mark.parametrize("algo", sorted(MINIMAL))
def test_an_unfinished_run_needs_resume(tmp_path, algo):
    """Checkpoints but no summary: a killed run. DPO and RM started afresh over it (their own main
    lacked the guard); every trainer now refuses before loading anything, and names the fix."""
    (tmp_path / "run" / "checkpoints" / "step-2").mkdir(parents=True)
    with pytest.raises(ReinforgeError, match="an unfinished run is there; pass --resume to continue it"):
        run_from_cli(algo, None, [*MINIMAL[algo], f"output_dir={tmp_path / 'run'}"], resume=False)


def test_every_trainer_is_dispatched():
    assert set(MINIMAL) | {"rlhf"} == set(TRAINERS)


# ---------------------------------------------------------------------------------------------- the Run contract


class ToyConfig(Config):
    """The fields the skeleton reads, and nothing else."""

    model: str = "toy"
    output_dir: str
    seed: int = 0
    learning_rate: float = 0.1
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    eval_interval: int = 2
    save_interval: int = 3
    keep_checkpoints: int = 5
    progress: bool = False


class Toy(torch.nn.Linear):
    def save_pretrained(self, path) -> None:
        torch.save(self.state_dict(), Path(path) / "toy.pt")


class ListSink:
    """A tracker stand-in: keeps what it is sent, and whether it was closed."""

    def __init__(self):
        self.records: list[dict] = []
        self.closed = False

    def log(self, record: dict) -> None:
        self.records.append(record)

    def close(self) -> None:
        self.closed = True


def train_toy(cfg: ToyConfig, resume: bool = False, should_stop=None, sinks=None) -> dict:
    """The shortest trainer: fit w*1 = 1 by gradient descent, 5 steps."""
    with Run(cfg, "toy", "toy", resume, should_stop=should_stop, sinks=sinks) as run:
        torch.manual_seed(cfg.seed)
        model = Toy(1, 1, bias=False)
        if run.last is not None:
            model.load_state_dict(torch.load(run.last / "toy.pt"))
        optimizer, scheduler = run.optimizer(model, None, total=5)
        for step in run.steps(lambda step: {"eval/w": model.weight.item()}, lambda step: {"seen": step}):
            loss = ((model(torch.ones(1)) - 1) ** 2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            run.log({"step": step, "kind": "train", "loss": loss.item()}, bar={"loss": loss.item()})
        return run.finish(
            {"final_loss": run.train_mean("loss", last=1)}, plot=("loss", "eval/w", "loss.png", "loss")
        )


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_cadence_sinks_and_summary(tmp_path):
    """Evaluations at 0, every eval_interval and after the last step; checkpoints every save_interval
    and at the end; every record reaches every sink, which is closed with the run."""
    sink = ListSink()
    summary = train_toy(ToyConfig(output_dir=str(tmp_path / "run")), sinks=[sink])
    recs = _records(tmp_path / "run")
    assert sink.records == recs and sink.closed
    assert [(r["kind"], r["step"]) for r in recs] == [
        ("eval", 0), ("train", 1), ("train", 2), ("eval", 2), ("train", 3), ("train", 4), ("eval", 4),
        ("train", 5), ("eval", 5),
    ]  # fmt: skip
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-3", "step-5"]
    assert load_trainer_state(tmp_path / "run" / "checkpoints" / "step-3")["seen"] == 3
    assert (tmp_path / "run" / "final" / "toy.pt").exists() and (tmp_path / "run" / "loss.png").exists()
    assert summary["status"] == "succeeded" and summary["steps"] == summary["total_steps"] == 5
    assert summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_loss"] == recs[-2]["loss"]


def test_run_stop_then_resume_matches_an_uninterrupted_run(tmp_path):
    """A stop signal after step 2 checkpoints step 2 and writes no final/; --resume then logs steps 3-5
    once each, with the values of the run that was never stopped."""
    whole = train_toy(ToyConfig(output_dir=str(tmp_path / "whole")))
    calls = iter([False, True])
    cut = train_toy(ToyConfig(output_dir=str(tmp_path / "cut")), should_stop=lambda: next(calls))
    assert cut["status"] == "stopped" and cut["steps"] == 2 and not (tmp_path / "cut" / "final").exists()
    resumed = train_toy(ToyConfig(output_dir=str(tmp_path / "cut")), resume=True)
    assert resumed["status"] == "succeeded" and resumed["final_loss"] == whole["final_loss"]
    train = lambda d: [(r["step"], r["loss"]) for r in _records(d) if r["kind"] == "train"]  # noqa: E731
    assert train(tmp_path / "cut") == train(tmp_path / "whole")
