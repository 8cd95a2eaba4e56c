"""`reinforge runs compare`: a table of runs side by side and one plot; a wrong directory or metric is one line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from reinforge.cli import app


def fake_run(path, algorithm, rewards, evals):
    """A run directory as the trainers write it: metrics.jsonl (train and eval records) and summary.json."""
    path.mkdir()
    records = [{"step": s, "kind": "eval", "eval/reward_mean": v} for s, v in evals]
    records += [{"step": i + 1, "kind": "train", "reward/mean": r} for i, r in enumerate(rewards)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {"algorithm": algorithm, "status": "succeeded", "steps": len(rewards), "seconds": 1.5}
    (path / "summary.json").write_text(json.dumps({**summary, "final_val_reward": evals[-1][1]}))
    return path


def test_compare_prints_a_table_and_writes_one_plot(tmp_path):
    a = fake_run(tmp_path / "a", "grpo", [0.1, 0.2, 0.4], [(0, 0.1), (3, 0.5)])
    b = fake_run(tmp_path / "b", "grpo", [0.3, 0.2, 0.1], [(0, 0.3), (3, 0.2)])
    out = tmp_path / "plots" / "cmp.png"
    res = CliRunner().invoke(app, ["runs", "compare", str(a), str(b), "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "runs compared on eval/reward_mean" in res.stdout
    row_a = next(line for line in res.stdout.splitlines() if " a " in line)
    assert "0.1000" in row_a and "0.5000" in row_a  # first and last (= best) validation reward
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(
        app, ["runs", "compare", str(a), str(b), "--metric", "reward/mean", "--output", str(out)]
    )
    assert res.exit_code == 0 and "runs compared on reward/mean" in res.stdout


def test_compare_errors_are_one_line(tmp_path):
    a = fake_run(tmp_path / "a", "grpo", [0.1], [(0, 0.1)])
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["runs", "compare", str(a), str(tmp_path / "empty")])
    assert res.exit_code == 2 and "empty: not a run directory (no metrics.jsonl)" in res.stderr
    res = CliRunner().invoke(app, ["runs", "compare", str(a), "--metric", "kl/k3"])
    assert (
        res.exit_code == 2
        and "no 'kl/k3' in metrics.jsonl (it has: eval/reward_mean, reward/mean)" in res.stderr
    )
