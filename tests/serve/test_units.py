"""Pure pieces of the service: preference export, metric names, recovery rules, SQLite WAL."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from reinforge.serve.db import Job, make_engine, session_factory
from reinforge.serve.feedback import preference_rows
from reinforge.serve.pool import MAX_ATTEMPTS, recover_jobs
from reinforge.serve.worker import openai_metrics


@pytest.mark.parametrize(
    "responses,ranking,thumbs,expected",
    [
        (
            ["a", "b"],
            [1, 0],
            None,
            [{"prompt": "p", "chosen": "b", "rejected": "a"}],
        ),  # pair -> chosen/rejected
        (
            ["a", "b", "c"],
            [2, 0, 1],
            None,
            [{"prompt": "p", "responses": ["a", "b", "c"], "ranking": [2, 0, 1]}],
        ),
        (
            ["a", "b", "c"],
            None,
            {"0": 1, "1": -1, "2": -1},  # thumbs only -> every (up, down) pair
            [
                {"prompt": "p", "chosen": "a", "rejected": "b"},
                {"prompt": "p", "chosen": "a", "rejected": "c"},
            ],
        ),
        (["a", "b"], None, {"0": 1}, []),  # only ups: no preference to export
        (
            ["a", "b"],
            [1, 0],
            {"0": 1, "1": -1},
            [{"prompt": "p", "chosen": "b", "rejected": "a"}],
        ),  # ranking wins
    ],
)
def test_preference_rows(responses, ranking, thumbs, expected):
    assert preference_rows("p", responses, ranking, thumbs) == expected


def test_openai_metric_names():
    rec = {"step": 3, "kind": "train", "reward/mean": 0.5, "loss/total": 0.1, "kl/k3": 0.01}
    assert openai_metrics(rec) == {"step": 3, "train_mean_reward": 0.5, "train_loss": 0.1}
    assert openai_metrics({"step": 4, "eval/reward_mean": 0.7})["full_valid_mean_reward"] == 0.7


def add_running(sf, job_id: str, attempts: int, control: str | None = None) -> None:
    with sf() as s:
        s.add(
            Job(
                id=job_id,
                owner="k",
                model="m",
                model_path="m",
                method={"type": "supervised"},
                training_file="f",
                status="running",
                control=control,
                attempts=attempts,
                worker="w0:1:x",
                heartbeat_at=time.time(),
                run_dir="/nonexistent",
                created_at=time.time(),
            )
        )
        s.commit()


def test_recovery_requeues_then_fails_with_reason(tmp_path):
    sf = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    add_running(sf, "retry", attempts=1)
    add_running(sf, "spent", attempts=MAX_ATTEMPTS)
    add_running(sf, "cancelling", attempts=1, control="cancel")
    assert recover_jobs(sf, "Server restarted") == 3
    with sf() as s:
        retry, spent, cancelling = (s.get(Job, i) for i in ("retry", "spent", "cancelling"))
        assert (retry.status, retry.resume) == ("queued", True)
        assert spent.status == "failed" and "gave up after 3 attempts" in spent.error["message"]
        assert cancelling.status == "cancelled"


def test_sqlite_uses_wal(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with eng.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_openai_hyperparameters_map_onto_sft_and_dpo_configs(tmp_path):
    from reinforge.errors import ConfigError
    from reinforge.openai_compat import job_config as build_config
    from reinforge.train.dpo import DPOConfig
    from reinforge.train.sft_trainer import SFTConfig

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"prompt": f"p{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(40))
    )

    def make(method):
        return build_config(method, "tiny:addition:1m", str(pairs), None, str(tmp_path), 3, n_train_rows=40)

    hp = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}
    sft = make({"type": "supervised", "supervised": {"hyperparameters": {**hp, "seed": "auto"}}})
    # learning_rate_multiplier scales the CLI's default rate (SFTConfig's 2e-5; the service's own 1e-4 before)
    assert isinstance(sft, SFTConfig) and (sft.epochs, sft.batch_size, sft.learning_rate) == (2.0, 4, 1e-5)
    assert sft.save_interval == 7 and sft.validation_split is None  # 20 steps -> ~3 checkpoints
    dpo = make({"type": "dpo", "dpo": {"hyperparameters": {**hp, "beta": 0.3}}, "reinforge": {"loss": "ipo"}})
    # DPOConfig's 5e-6 x 0.5 (the service's own 1e-5 x 0.5 before)
    assert isinstance(dpo, DPOConfig) and (dpo.beta, dpo.loss, dpo.learning_rate) == (0.3, "ipo", 2.5e-6)
    with pytest.raises(ConfigError, match=r"method.supervised.hyperparameters.beta: unknown"):
        make({"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}})
    with pytest.raises(ConfigError, match=r"method.dpo.hyperparameters.n_epochs: must be a positive number"):
        make({"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": -1}}})


def test_service_dpo_cadence_counts_the_pairs_a_ranking_expands_to(tmp_path):
    """8 rankings of 4 responses are 48 pairs: 18 steps at batch 8 for 3 epochs, so a checkpoint every
    6 and an evaluation every 2 (the 8 file rows gave 3 steps: a checkpoint and an evaluation every step)."""
    from reinforge.openai_compat import job_config as build_config

    rows = [
        {"prompt": f"p{i}", "responses": ["a", "bb", "ccc", "dddd"], "ranking": [0, 1, 2, 3]}
        for i in range(8)
    ]
    data = tmp_path / "rankings.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    method = {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 3, "batch_size": 8}}}
    cfg = build_config(method, "tiny:addition:1m", str(data), None, str(tmp_path / "run"), 0, n_train_rows=8)
    assert (cfg.save_interval, cfg.eval_interval) == (6, 2)
