"""End to end with the official `openai` client only: files -> job -> events/checkpoints -> chat with ft: model."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")

from tests.helpers import wait_for, write_jsonl  # noqa: E402
from tests.serve.helpers import STRING_CHECK, rft_rows, sft_rows  # noqa: E402


@pytest.fixture(scope="module")
def client(server, api_key):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0, timeout=60)


def run_to_success(client, job_id: str):
    def done():
        job = client.fine_tuning.jobs.retrieve(job_id)
        assert job.status not in ("failed", "cancelled"), job.error
        return job if job.status == "succeeded" else None

    return wait_for(done, timeout=300, every=0.5)


def check_finished_job(client, job, expect_metric: str):
    assert job.fine_tuned_model and job.fine_tuned_model.startswith("ft:tiny:addition:1m:")
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in events]
    assert any("successfully completed" in m for m in messages)
    metrics = [e.data for e in events if e.type == "metrics"]
    assert metrics and any(expect_metric in m for m in metrics), metrics[:3]
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert ckpts and all(
        c.fine_tuned_model_checkpoint.startswith(job.fine_tuned_model + ":ckpt-step-") for c in ckpts
    )
    assert ckpts[0].step_number == max(c.step_number for c in ckpts)  # newest first
    models = {m.id for m in client.models.list().data}
    assert job.fine_tuned_model in models and ckpts[0].fine_tuned_model_checkpoint in models
    reply = client.chat.completions.create(
        model=job.fine_tuned_model,
        temperature=0,
        max_tokens=6,
        messages=[{"role": "user", "content": "21+34"}],
    )
    assert reply.choices[0].message.content.strip().isdigit(), reply
    chunks = list(
        client.chat.completions.create(
            model=ckpts[0].fine_tuned_model_checkpoint,
            temperature=0,
            max_tokens=6,
            stream=True,
            messages=[{"role": "user", "content": "21+34"}],
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length") and streamed.strip()


def test_reinforcement_job_with_string_check(client, tmp_path):
    train = client.files.create(
        file=write_jsonl(tmp_path / "train.jsonl", rft_rows()).open("rb"), purpose="fine-tune"
    )
    val = client.files.create(
        file=write_jsonl(tmp_path / "val.jsonl", rft_rows()[:2]).open("rb"), purpose="fine-tune"
    )
    assert {f.id for f in client.files.list().data} >= {train.id, val.id}
    job = client.fine_tuning.jobs.create(
        model="tiny:addition:1m",
        training_file=train.id,
        validation_file=val.id,
        suffix="e2e",
        seed=1,
        method={
            "type": "reinforcement",
            "reinforcement": {
                "grader": STRING_CHECK,
                "hyperparameters": {
                    "n_epochs": 1,
                    "batch_size": 2,
                    "compute_multiplier": 0.25,
                    "eval_interval": 2,
                },
            },
        },
    )
    assert job.status == "queued" and job.method.type == "reinforcement"
    job = run_to_success(client, job.id)
    assert job.fine_tuned_model.endswith(f":e2e:{job.id}")
    check_finished_job(client, job, "train_mean_reward")
    evals = [
        e.data
        for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data
        if e.type == "metrics" and "full_valid_mean_reward" in e.data
    ]
    assert evals, "validation reward was never reported"
    assert job.result_files and client.files.content(job.result_files[0]).text.count("\n") >= 3


def test_supervised_job(client, tmp_path):
    train = client.files.create(
        file=write_jsonl(tmp_path / "sft.jsonl", sft_rows()).open("rb"), purpose="fine-tune"
    )
    val = client.files.create(
        file=write_jsonl(tmp_path / "sft_val.jsonl", sft_rows()[:2]).open("rb"), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model="tiny:addition:1m",
        training_file=train.id,
        validation_file=val.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 2}}},
    )
    job = run_to_success(client, job.id)
    check_finished_job(client, job, "train_loss")
    page = client.fine_tuning.jobs.list(limit=1)
    assert len(page.data) == 1 and page.data[0].id == job.id and page.has_more


def test_dpo_job_reads_openai_dpo_rows(client, tmp_path):
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": q}]},
            "preferred_output": [{"role": "assistant", "content": a}],
            "non_preferred_output": [{"role": "assistant", "content": str(int(a) + 1)}],
        }
        for q, a in (("12+30", "42"), ("25+25", "50"), ("33+14", "47"), ("40+19", "59"))
    ]
    train = client.files.create(
        file=write_jsonl(tmp_path / "dpo.jsonl", rows).open("rb"), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model="tiny:addition:1m",
        training_file=train.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 2}}},
    )
    job = run_to_success(client, job.id)
    assert job.method.type == "dpo"
    check_finished_job(client, job, "train_loss")


def test_graders_run_and_validate(client):
    ok = client.fine_tuning.alpha.graders.run(grader=STRING_CHECK, model_sample="57", item={"answer": "57"})
    bad = client.fine_tuning.alpha.graders.run(grader=STRING_CHECK, model_sample="56", item={"answer": "57"})
    assert (ok.reward, bad.reward) == (1.0, 0.0)
    assert ok.metadata.type == "string_check" and ok.metadata.errors.invalid_variable_error is False
    valid = client.fine_tuning.alpha.graders.validate(grader=STRING_CHECK).grader
    assert (valid.type, valid.name, valid.reference) == ("string_check", "exact", "{{item.answer}}")
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.alpha.graders.validate(grader={"type": "string_check", "name": "x", "input": "a"})
