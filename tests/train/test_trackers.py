"""report_to: a short RFT run's trackers (tensorboard, W&B offline, MLflow file store) hold the rewards
metrics.jsonl holds, read back with each tracker's own reader; a missing tracker is one line naming its extra."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest

from reinforge.config import load_config
from reinforge.errors import ConfigError
from reinforge.train.grpo import GRPOConfig, train_grpo
from reinforge.train.trackers import numeric
from tests.train.test_grpo import sevens, small_cfg


def wandb_history(run_file: Path) -> list[dict]:
    """The history rows of an offline ``run-ID.wandb`` file: a 7-byte header, then LevelDB-style
    records (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks of protobufs."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, rows = run_file.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        buf, pos = buf + data[pos + 7 : pos + 7 + n], pos + 7 + n
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            if record.WhichOneof("record_type") == "history":
                items = record.history.item  # "reward/mean" comes as nested_key ["reward", "mean"]
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return rows


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("tensorboard", "wandb", "mlflow")),
    reason="needs the trackers extra (tensorboard, wandb, mlflow)",
)
def test_rft_run_reports_the_same_rewards_to_every_tracker(tiny_addition_dir, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")  # no network: the run is written to WANDB_DIR
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())  # a file store
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for it
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "trackers-test")
    (tmp_path / "wandb").mkdir()
    run = tmp_path / "run"
    cfg = small_cfg(tiny_addition_dir, run, steps=3, eval_interval=2, save_interval=0)
    cfg.report_to = ["tensorboard", "wandb", "mlflow"]
    train_grpo(cfg, reward_fn=sevens)

    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rewards = {r["step"]: r["reward/mean"] for r in records if r["kind"] == "train"}
    evals = {r["step"]: r["eval/reward_mean"] for r in records if r["kind"] == "eval"}
    assert sorted(rewards) == [1, 2, 3] and sorted(evals) == [0, 2, 3]

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {e.step: e.value for e in events.Scalars("reward/mean")} == pytest.approx(rewards)
    assert {e.step: e.value for e in events.Scalars("eval/reward_mean")} == pytest.approx(evals)

    (run_file,) = (tmp_path / "wandb").glob("wandb/offline-run-*/run-*.wandb")
    history = wandb_history(run_file)
    assert {h["_step"]: h["reward/mean"] for h in history if "reward/mean" in h} == pytest.approx(rewards)
    assert {h["_step"]: h["eval/reward_mean"] for h in history if "eval/reward_mean" in h} == pytest.approx(
        evals
    )

    client = MlflowClient()
    (ml_run,) = client.search_runs([client.get_experiment_by_name("trackers-test").experiment_id])
    history = client.get_metric_history(ml_run.info.run_id, "reward/mean")
    assert {m.step: m.value for m in history} == pytest.approx(rewards)
    assert ml_run.info.run_name == "run" and ml_run.data.params["group_size"] == "4"
    assert json.loads((run / "trackers.json").read_text()) == {
        "wandb": run_file.stem.removeprefix("run-"),
        "mlflow": ml_run.info.run_id,
    }


@pytest.mark.skipif(importlib.util.find_spec("trackio") is not None, reason="trackio is installed here")
def test_a_missing_tracker_is_one_line_naming_its_extra(tiny_addition_dir, tmp_path):
    cfg = small_cfg(tiny_addition_dir, tmp_path / "run", report_to=["trackio"])
    with pytest.raises(
        ConfigError, match=r"report_to: trackio needs the trackio package.*reinforge\[trackio\]"
    ):
        train_grpo(cfg, reward_fn=sevens)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # stopped before any model loaded


def test_report_to_is_checked_like_any_key(tmp_path):
    with pytest.raises(ConfigError, match=r"--set report_to=\[neptune\]: report_to.0: Input should be"):
        load_config(GRPOConfig, None, ["report_to=[neptune]"])


def test_numeric_keeps_finite_numbers_only():
    record = {"step": 2, "kind": "eval", "eval/pass@4": 1, "x": float("nan"), "ok": False, "name": "a"}
    assert numeric(record) == {"eval/pass@4": 1.0}


@pytest.mark.skipif(not importlib.util.find_spec("tensorboard"), reason="needs tensorboard")
def test_tune_reports_each_trial_as_a_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from typer.testing import CliRunner

    from reinforge.cli import app

    out = tmp_path / "out"
    example = Path(__file__).resolve().parents[2] / "examples/tune/function.yaml"
    sets = [f"output_dir={out}", "n_trials=3", "sampler=random", "report_to=[tensorboard]"]
    r = CliRunner().invoke(app, ["tune", str(example), *[a for s in sets for a in ("--set", s)]])
    assert r.exit_code == 0, r.output
    trials = json.loads((out / "trials.json").read_text())["trials"]
    for trial in trials:
        events = EventAccumulator(str(out / "tensorboard" / f"trial-{trial['number']}"))
        events.Reload()
        (value,) = events.Scalars("value")
        assert (value.step, value.value) == (0, pytest.approx(trial["values"][0]))
