"""`reinforge tune`: config runs, outputs, cost-estimate refusal, and the manual ask/tell mode."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from reinforge.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def tune(*args):
    return runner.invoke(app, ["tune", *args])


def test_function_config_runs_and_writes_outputs(tmp_path):
    out = tmp_path / "out"
    r = tune(
        str(EXAMPLES / "tune/function.yaml"),
        "--set",
        f"output_dir={out}",
        "--set",
        "n_trials=4",
        "--set",
        "sampler=tpe",
    )
    assert r.exit_code == 0, r.output
    for name in ("trials.csv", "trials.json", "best.yaml", "plots/history.png", "plots/importance.png"):
        assert (out / name).exists(), name
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert set(best) == {"x1", "x2"}
    again = tune(
        str(EXAMPLES / "tune/function.yaml"),
        "--set",
        f"output_dir={out}",
        "--set",
        "n_trials=8",
        "--set",
        "sampler=tpe",
    )
    assert again.exit_code == 2 and "--resume" in again.output  # never silently mixes into an old study
    resumed = tune(
        str(EXAMPLES / "tune/function.yaml"),
        "--set",
        f"output_dir={out}",
        "--set",
        "n_trials=8",
        "--set",
        "sampler=tpe",
        "--resume",
    )
    assert resumed.exit_code == 0, resumed.output
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len(trials) == 8
    # still in TPE's random start-up: the resumed sampler must not replay the first trials' draws
    params = [tuple(sorted(t["params"].items())) for t in trials]
    assert len(set(params)) == 8, params


def test_ask_tell_manual_mode(tmp_path):
    cfg = EXAMPLES / "tune/manual.yaml"
    db = tmp_path / "m.db"
    r = tune("ask", str(cfg), "--set", f"storage={db}")
    assert r.exit_code == 0, r.output
    assert "trial 0" in r.output and "temperature" in r.output
    r = tune("ask", str(db))  # the .db alone is enough once the study exists
    assert "trial 1" in r.output
    r = tune("tell", str(db), "0", "7.5")
    assert r.exit_code == 0 and "complete" in r.output
    r = tune("tell", str(db), "0", "8")
    assert r.exit_code == 2 and "already complete" in r.output
    r = tune("tell", str(db), "1", "1,2")
    assert r.exit_code == 2 and "1 objectives" in r.output
    r = tune("tell", str(db), "9", "1")
    assert r.exit_code == 2 and "no trial 9" in r.output
    r = tune("tell", str(db), "1", "-0.5")  # a negative score is VALUE, not an unknown option
    assert r.exit_code == 0 and "complete" in r.output, r.output
    for i in range(2, 6):  # the sampler keeps proposing from the told history
        assert f"trial {i}" in tune("ask", str(db)).output
        assert tune("tell", str(db), str(i), str(i)).exit_code == 0
    r = tune("show", str(db))
    assert r.exit_code == 0 and (tmp_path / "m" / "trials.csv").exists()


RAG_FAST = {
    "study": "rag",
    "objective": {
        "type": "rag",
        "documents": str(EXAMPLES / "rag/documents.jsonl"),
        "questions": str(EXAMPLES / "rag/questions.jsonl"),
    },
    "objectives": {"recall": "maximize"},
    "sampler": "random",
    "n_trials": 10,
    "space": {
        "chunk_size": {"type": "int", "low": 20, "high": 100, "step": 20},
        "chunk_overlap": [0],
        "k": {"type": "int", "low": 1, "high": 4},
        "retriever": ["bm25"],
    },
}


def test_cost_estimate_refuses_past_budget_unless_confirmed(tmp_path):
    cfg = tmp_path / "rag.yaml"
    cfg.write_text(
        yaml.safe_dump({**RAG_FAST, "output_dir": str(tmp_path / "o"), "budget": {"examples": 200}})
    )
    r = tune(str(cfg))
    assert r.exit_code == 2 and "exceeds budget.examples" in r.output and "--yes" in r.output
    assert not (tmp_path / "o" / "trials.csv").exists()
    r = tune(str(cfg), "--yes")
    assert r.exit_code == 0, r.output
    trials = json.loads((tmp_path / "o" / "trials.json").read_text())["trials"]
    assert 3 <= len(trials) <= 4  # stopped at the 200-example cap (64 questions per trial)


def test_bad_config_is_one_line_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**RAG_FAST, "n_trails": 3}))
    r = tune(str(cfg))
    assert r.exit_code == 2 and "n_trails" in r.output and "unknown key" in r.output
