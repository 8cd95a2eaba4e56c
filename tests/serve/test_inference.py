"""Chat completions: a seeded sample never depends on the batch it ran in; streaming returns all ``n`` choices."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from reinforge.models.generation import SamplingParams
from reinforge.serve.app import ServeSettings, create_app
from reinforge.serve.db import create_key, default_db_url, make_engine
from reinforge.serve.inference import ChatRequest, LoadedModel
from tests.helpers import micro_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return micro_model(tmp_path_factory.mktemp("inference") / "micro")


@pytest.fixture(scope="module")
def loaded(model_dir) -> LoadedModel:
    from reinforge.models.loading import load_model

    return LoadedModel(*load_model(str(model_dir), device="cpu"))


@pytest.mark.parametrize("seed", [0, 1])  # seed 0 ran batched with other seed-0 requests (treated as no seed)
def test_seeded_sample_is_the_same_alone_and_among_other_requests(loaded, seed):
    a, b = [loaded.tokenizer(t)["input_ids"] for t in ("hello there", "a much longer prompt here")]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=12, n=1, seed=seed)
    alone_a, alone_b = loaded.submit(a, params).texts, loaded.submit(b, params).texts
    together = [ChatRequest(a, params), ChatRequest(b, params)]
    loaded.serve_pending(together)  # as the batching thread does when both wait at once
    assert [r.future.result().texts for r in together] == [alone_a, alone_b]


@pytest.fixture(scope="module")
def app_client(model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("app")
    client = TestClient(create_app(ServeSettings(data_dir=d, models=[str(model_dir)])))
    key = create_key(make_engine(default_db_url(d)), "alice")[1]
    return client, {"Authorization": f"Bearer {key}"}


def stream_choices(client, headers, **body) -> dict[int, dict]:
    """POST a streaming chat completion; per choice index, its text and its finish reasons."""
    r = client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "micro", "messages": [{"role": "user", "content": "hi"}], "stream": True, **body},
    )
    assert r.status_code == 200, r.text
    events = [line[len("data: ") :] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    choices: dict[int, dict] = {}
    for e in events[:-1]:
        (c,) = json.loads(e)["choices"]
        got = choices.setdefault(c["index"], {"text": "", "finish": []})
        got["text"] += c["delta"].get("content") or ""
        got["finish"] += [c["finish_reason"]] if c["finish_reason"] else []
    return choices


def test_streaming_returns_n_choices(app_client):
    client, headers = app_client
    choices = stream_choices(client, headers, n=3, max_tokens=8, temperature=1.0, seed=5)
    assert sorted(choices) == [0, 1, 2]  # one choice came back whatever n was
    assert all(len(c["finish"]) == 1 and c["finish"][0] in ("stop", "length") for c in choices.values())
    assert len({c["text"] for c in choices.values()}) > 1  # independent samples, not one copied
    one = stream_choices(client, headers, n=1, max_tokens=8, temperature=1.0, seed=5)
    assert sorted(one) == [0] and one == stream_choices(
        client, headers, max_tokens=8, temperature=1.0, seed=5
    )
