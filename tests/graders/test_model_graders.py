"""score_model and label_model against a fake OpenAI-compatible server on 127.0.0.1."""

import copy

import pytest

from reinforge.graders import from_spec, run
from reinforge.graders.base import make_sample
from reinforge.graders.model_graders import _CACHE, parse_label, parse_score
from tests.graders.fake_openai import FakeOpenAI
from tests.graders.openai_examples import LABEL_MODEL, SCORE_MODEL, SCORE_MODEL_GUIDE


@pytest.fixture()
def server():
    _CACHE.clear()
    with FakeOpenAI() as s:
        yield s


def with_server(spec: dict, server: FakeOpenAI, **extra) -> dict:
    return {
        **copy.deepcopy(spec),
        "base_url": server.base_url,
        "api_key": "sk-test",
        "retry_backoff_s": 0.01,
        **extra,
    }


@pytest.mark.parametrize("example", [SCORE_MODEL, SCORE_MODEL_GUIDE])
def test_score_model_openai_examples(server, example):
    out = run(
        with_server(example, server), "fuzzy wuzzy was a bear", {"reference_answer": "fuzzy wuzzy was a bear"}
    )
    assert out["reward"] == 1.0
    assert out["metadata"]["sampled_model_name"] == "fake-judge-1"
    assert out["metadata"]["token_usage"] == {
        "prompt_tokens": 10,
        "total_tokens": 15,
        "completion_tokens": 5,
        "cached_tokens": 0,
    }
    assert out["model_grader_token_usage_per_model"]["fake-judge-1"]["total_tokens"] == 15
    assert not any(v for k, v in out["metadata"]["errors"].items() if not k.endswith(("details", "type")))
    body = server.requests[0]["body"]
    assert body["model"] == example["model"] and server.requests[0]["auth"] == "Bearer sk-test"
    assert "fuzzy wuzzy was a bear" in body["messages"][0]["content"]  # template rendered
    assert body["response_format"]["type"] == "json_schema"
    for k, v in example["sampling_params"].items():
        assert body[k] == v


def test_score_model_range_clipping_and_zero(server):
    g = from_spec(with_server(SCORE_MODEL_GUIDE, server, range=[0, 5]))
    hi = g.grade({"reference_answer": "OUT_OF_RANGE"}, make_sample("OUT_OF_RANGE"))
    assert hi.reward == 5.0 and hi.metadata["raw_score"] == 7.0
    assert g.grade({"reference_answer": "a"}, make_sample("b")).reward == 0.0


def test_label_model_openai_example(server):
    g = from_spec(with_server(LABEL_MODEL, server))
    grades = g.grade_batch(
        [
            ({"response": "I love it"}, make_sample("")),
            ({"response": "I hate it"}, make_sample("")),
            ({"response": "It is a chair"}, make_sample("")),
        ]
    )
    assert [x.reward for x in grades] == [1.0, 0.0, 0.0]
    assert [x.metadata["label"] for x in grades] == ["positive", "negative", "neutral"]
    roles = [m["role"] for m in server.requests[0]["body"]["messages"]]
    assert roles == ["system", "user"]


def test_retries_then_succeeds(server):
    g = from_spec(with_server(SCORE_MODEL, server))
    grade = g.grade({"reference_answer": "FLAKY"}, make_sample("FLAKY"))
    assert grade.reward == 1.0 and grade.ok
    assert len(server.requests) == 3  # two 500s, then the answer


def test_server_error_after_retries_is_recorded(server):
    server.flaky_left = 100
    g = from_spec(with_server(SCORE_MODEL, server, max_retries=1))
    grade = g.grade({"reference_answer": "FLAKY"}, make_sample("FLAKY"))
    assert grade.reward == 0.0 and grade.errors == {"model_grader_server_error": True}
    assert "500" in grade.metadata["model_grader_server_error_details"]


def test_unreachable_server_is_recorded():
    spec = {**SCORE_MODEL, "base_url": "http://127.0.0.1:9/v1", "max_retries": 0, "timeout_s": 2}
    grade = from_spec(spec).grade({"reference_answer": "a"}, make_sample("a"))
    assert grade.errors == {"model_grader_server_error": True}


def test_refusal_and_parse_errors_are_zero_and_counted(server):
    g = from_spec(with_server(SCORE_MODEL, server))
    refusal = g.grade({"reference_answer": "REFUSE"}, make_sample("x"))
    garbage = g.grade({"reference_answer": "GARBAGE"}, make_sample("x"))
    assert refusal.reward == 0 and refusal.errors == {"model_grader_refusal_error": True}
    assert garbage.reward == 0 and garbage.errors == {"model_grader_parse_error": True}
    assert g.token_usage["fake-judge-1"]["total_tokens"] == 30


def test_cache_and_concurrency(server):
    g = from_spec(with_server(SCORE_MODEL, server, concurrency=4))
    pairs = [({"reference_answer": f"r{i % 5}"}, make_sample(f"r{i % 5}")) for i in range(40)]
    grades = g.grade_batch(pairs)
    assert all(x.reward == 1.0 for x in grades)
    assert len(server.requests) == 5 and g.requests == 5  # identical requests answered from the cache
    assert sum(x.metadata["cached"] for x in grades) == 35


def test_cache_key_is_what_the_judge_is_sent(server):
    # Issue 24's suspicion, confirmed: the key left out label_model's labels, which reach the judge as the
    # response format's enum, so a grader with other labels got an answer chosen among another's labels.
    pair = ({"response": "I love it"}, make_sample(""))
    assert from_spec(with_server(LABEL_MODEL, server)).grade(*pair).reward == 1.0
    other = from_spec(with_server(LABEL_MODEL, server, labels=["positive", "negative"]))
    assert not other.grade(*pair).metadata["cached"] and len(server.requests) == 2
    schema = server.requests[1]["body"]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["result"]["enum"] == ["positive", "negative"]
    # passing_labels are applied here, never sent: the same request, answered from the cache
    stricter = from_spec(with_server(LABEL_MODEL, server, passing_labels=["neutral"]))
    grade = stricter.grade(*pair)
    assert grade.metadata["cached"] and grade.reward == 0.0 and len(server.requests) == 2


def test_environment_supplies_base_url(server, monkeypatch):
    monkeypatch.setenv("REINFORGE_GRADER_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    g = from_spec({**SCORE_MODEL, "structured_output": False})
    assert g.grade({"reference_answer": "x"}, make_sample("x")).reward == 1.0
    assert (
        server.requests[0]["auth"] == "Bearer sk-env" and "response_format" not in server.requests[0]["body"]
    )


def test_missing_variable(server):
    grade = from_spec(with_server(LABEL_MODEL, server)).grade({}, make_sample(""))
    assert grade.errors == {"invalid_variable_error": True} and not server.requests


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"result": 0.5}', 0.5),
        ('```json\n{"result": 1}\n```', 1.0),
        ('Score: {"result": 0.2} done', 0.2),
        ("0.75", 0.75),
    ],
)
def test_parse_score(content, expected):
    assert parse_score(content) == expected


@pytest.mark.parametrize("content", ["good", '{"result": "high"}', '{"result": true}', "nan"])
def test_parse_score_rejects(content):
    with pytest.raises(ValueError):
        parse_score(content)


def test_parse_label():
    labels = ["positive", "negative"]
    assert parse_label('{"result": "Positive"}', labels) == "positive"
    assert parse_label("negative", labels) == "negative"
    with pytest.raises(ValueError):
        parse_label('{"result": "meh"}', labels)


def test_local_model_directory_as_judge(tmp_path):
    from reinforge.models.tiny import build_model, build_tokenizer, save_tiny

    path = save_tiny(build_model("1m", seed=0), build_tokenizer(), tmp_path / "judge")
    spec = {
        "type": "score_model",
        "name": "local",
        "model": str(path),
        "input": [{"role": "user", "content": "Same? {{item.a}} / {{sample.output_text}}"}],
        "sampling_params": {"max_tokens": 6, "temperature": 0},
    }
    g = from_spec(spec)
    grade = g.grade({"a": "x"}, make_sample("x"))
    # random weights: the answer is gibberish, which must be a recorded parse error, not a crash
    assert grade.errors in ({}, {"model_grader_parse_error": True})
    assert grade.metadata["sampled_model_name"] == "judge"
    usage = g.token_usage["judge"]
    assert 0 < usage["completion_tokens"] <= 6 and usage["prompt_tokens"] > 10


def test_run_reports_usage_for_a_cached_answer(server):
    spec = with_server(SCORE_MODEL, server)
    first = run(spec, "a", {"reference_answer": "a"})
    second = run(spec, "a", {"reference_answer": "a"})
    assert len(server.requests) == 1
    assert first["metadata"]["token_usage"]["total_tokens"] == 15
    assert (
        second["metadata"]["token_usage"]["total_tokens"] == 15
        and second["metadata"]["scores"]["cached"] is True
    )


# --- a judge at fault: 429 with Retry-After, 500s, a hang (the real HTTP server on loopback) -------------


@pytest.mark.parametrize(
    "headers, wait_s",
    [
        ({"Retry-After": "1"}, 1.0),  # seconds, as HTTP says
        ({"retry-after-ms": "600", "Retry-After": "9"}, 0.6),  # OpenAI's finer header wins
    ],
)
def test_rate_limited_judge_is_retried_after_the_wait_it_asks_for(server, headers, wait_s):
    server.replies = [(429, headers)]
    g = from_spec(with_server(SCORE_MODEL, server))  # backoff 0.01 s: only Retry-After explains the gap
    grade = g.grade({"reference_answer": "a"}, make_sample("a"))
    assert grade.ok and grade.reward == 1.0 and len(server.requests) == 2
    assert server.arrived[1] - server.arrived[0] >= wait_s


def test_judge_failing_every_retry_is_a_counted_server_error(server):
    from reinforge.train.rollout import grader_error_fields

    server.replies = [(500, {}), (503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})] * 2
    g = from_spec(with_server(SCORE_MODEL, server, max_retries=2, concurrency=1))
    pairs = [({"reference_answer": r}, make_sample(r)) for r in ("a", "b", "c")]
    grades = g.grade_batch(pairs)
    assert [x.errors for x in grades[:2]] == [{"model_grader_server_error": True}] * 2
    assert "429" in grades[0].metadata["model_grader_server_error_details"]
    assert "after 3 attempts" in grades[0].metadata["model_grader_server_error_details"]
    assert grades[2].ok and len(server.requests) == 7  # 3 + 3 failed tries, then the third row's answer
    assert grader_error_fields(grades)["grader/errors"] == 2


def test_hanging_judge_times_out_and_is_retried(server):
    server.hang.set()
    g = from_spec(with_server(SCORE_MODEL, server, max_retries=1, timeout_s=0.3))
    grade = g.grade({"reference_answer": "a"}, make_sample("a"))
    assert grade.errors == {"model_grader_server_error": True}
    assert "timed out" in grade.metadata["model_grader_server_error_details"]
    assert len(server.requests) == 2
    server.hang.clear()
    assert g.grade({"reference_answer": "b"}, make_sample("b")).ok  # the judge is back: graded again
