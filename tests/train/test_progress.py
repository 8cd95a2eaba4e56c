"""The training progress bar: its elapsed time is the run's, and its last frame shows the final validation."""

from __future__ import annotations

import re
import time
from datetime import timedelta

from rich.progress import Progress

from reinforge.train.progress import RunElapsedColumn
from tests.helpers import chat_rows, micro_model, write_jsonl


def test_elapsed_counts_from_the_run_start():
    """A bar opened after 239 s of model building and a first evaluation shows 0:03:59, not 0:00:00."""
    progress = Progress()
    progress.add_task("ppo", total=4)
    (task,) = progress.tasks
    started = time.time() - 239.4
    before = time.time()
    shown = str(RunElapsedColumn(started).render(task))
    after = time.time()
    # 0:03:59, unless the clock passed a whole second while rendering
    assert shown in {str(timedelta(seconds=int(t - started))) for t in (before, after)}
    assert shown.startswith(("0:03:59", "0:04:0"))


def test_last_frame_shows_the_final_validation(tmp_path, capsys):
    """With no evaluation inside the loop, the bar kept the step-0 validation loss (the LoRA RFT run's
    stale val figure): its last frame must show the final one, the summary's ``final_val_loss``."""
    from reinforge.train.sft_trainer import SFTConfig, train_sft

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(20))
    cfg = SFTConfig(
        model=str(micro_model(tmp_path / "m")),
        train_file=str(data),
        output_dir=str(tmp_path / "run"),
        steps=3,
        batch_size=4,
        learning_rate=1e-2,
        validation_split=0.2,
        eval_interval=0,
        save_interval=0,
        device="cpu",
    )
    summary = train_sft(cfg)
    shown = re.findall(r"val (\d+\.\d+)", capsys.readouterr().err)
    assert shown and float(shown[-1]) == round(summary["final_val_loss"], 3)
    assert round(summary["baseline_val_loss"], 3) != round(summary["final_val_loss"], 3)
