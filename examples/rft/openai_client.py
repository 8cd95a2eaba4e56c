"""The README's Serve example: `reinforge rft examples/rft/addition.yaml` as a job, with the official `openai` client.

Start the server first (README, "Serve"), then, with REINFORGE_KEY set:  python examples/rft/openai_client.py
Same data, grader and training settings as addition.yaml (tests/examples checks they map to the same config).
"""

import json
import os
import time
from pathlib import Path

HERE = Path(__file__).parent
METHOD = {
    "type": "reinforcement",
    "reinforcement": {
        "grader": json.loads((HERE / "grader.json").read_text()),
        "hyperparameters": {"n_epochs": 4, "batch_size": 16, "eval_interval": 50, "eval_samples": 4},
    },
    # reinforge's extension: trainer settings that OpenAI's API has no name for, as in addition.yaml
    "reinforge": {
        "max_new_tokens": 5,
        "learning_rate": 3.0e-4,
        "lr_schedule": "cosine",
        "warmup_steps": 20,
        "loss_type": "dapo",
        "beta": 0.0,
    },
}


def main() -> None:
    from openai import OpenAI

    base_url = os.environ.get("REINFORGE_BASE_URL", "http://127.0.0.1:8000/v1")
    client = OpenAI(base_url=base_url, api_key=os.environ["REINFORGE_KEY"])
    train = client.files.create(file=open(HERE / "train.jsonl", "rb"), purpose="fine-tune")
    valid = client.files.create(file=open(HERE / "valid.jsonl", "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tiny:addition:1m",
        training_file=train.id,
        validation_file=valid.id,
        suffix="add",
        method=METHOD,
    )
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    print(job.status, job.error or "")
    # the result file is the run's metrics.jsonl: one record per step and per validation
    records = [json.loads(x) for x in client.files.content(job.result_files[0]).text.splitlines()]
    val = [r["eval/reward_mean"] for r in records if r["kind"] == "eval"]
    print(f"validation reward {val[0]:.3f} -> {val[-1]:.3f}")
    reply = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "12+34"}], max_tokens=5
    )
    print(job.fine_tuned_model, "->", reply.choices[0].message.content)


if __name__ == "__main__":
    main()
