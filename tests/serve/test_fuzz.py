"""Schemathesis against the app's own OpenAPI schema, with a valid key and its full set of checks: no 5xx,
no route that ignores a missing or wrong key, only the statuses and content types the schema documents.

Schemathesis' engine runs all its phases (examples, coverage, fuzzing, stateful) in process against the
ASGI app, with a bounded number of examples per operation so that it stays in the default test run.
(Its pytest plugin's lazy ``from_fixture`` does not run under pytest 9, hence the engine.)
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")  # the dev extra

from fastapi.testclient import TestClient  # noqa: E402
from schemathesis.engine import Status, from_schema  # noqa: E402
from schemathesis.engine.events import FatalError, NonFatalError, ScenarioFinished  # noqa: E402

from reinforge.serve.app import ServeSettings, create_app  # noqa: E402
from reinforge.serve.db import Job, create_key  # noqa: E402

EXAMPLES = 10  # per operation and phase


def failures(event: ScenarioFinished) -> list[str]:
    out = []
    for case_id, checks in event.recorder.checks.items():
        case = event.recorder.cases[case_id].value
        for check in checks:
            if check.status != Status.SUCCESS and check.failure_info is not None:
                f = check.failure_info.failure
                out.append(
                    f"{event.label} [{check.name}] {f.title}: {f.message[:300]} <- {case.as_curl_command()}"
                )
    return out  # an error without a failed check comes as its own NonFatalError


def test_api_conforms_to_its_schema(tmp_path):
    # rates and job counts high enough that the fuzzer meets the routes, not the limits (test_limits.py)
    settings = ServeSettings(data_dir=tmp_path, grader_runs_per_minute=10**6, chat_per_minute=10**6)
    settings.max_active_jobs_per_key = 10**6
    app = create_app(settings)
    key = create_key(app.state.service.engine, "fuzz")[1]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.update(headers={"Authorization": f"Bearer {key}"})
    schema.config.generation.update(max_examples=EXAMPLES)
    # The schema cannot say which ids exist or which grader JSON is valid: 400 and 404 are answers a
    # well-formed request can get (404 is in schemathesis' own default list already).
    schema.config.checks.positive_data_acceptance.expected_statuses = [
        "2xx",
        "400",
        "401",
        "403",
        "404",
        "429",
    ]
    found, ran = [], 0
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            ran += 1
            if event.status in (Status.FAILURE, Status.ERROR):
                found += failures(event)
        elif isinstance(event, NonFatalError):
            found.append(
                f"{event.label} ({event.phase}): {type(event.value).__name__}: {str(event.value)[:500]}"
            )
        elif isinstance(event, FatalError):
            found.append(f"schemathesis: {event.exception!r}")
    assert ran >= 20
    assert not found, "\n".join(found[:20])


@pytest.mark.parametrize(
    "method,path,body,status",
    [
        ("get", "/v1/files?limit=100000000000000000000", None, 400),  # was a 500: SQLite integer overflow
        ("get", "/v1/files?order=sideways", None, 400),  # only asc or desc
        ("get", "/v1/fine_tuning/jobs/x/metrics?since=-1", None, 400),
        ("post", "/v1/feedback/items/100000000000000000000", {"ranking": [0, 1]}, 400),  # was a 500
        ("post", "/v1/fine_tuning/alpha/graders/run", {"grader": {}, "model_sample": 4}, 400),  # not coerced
        ("post", "/v1/chat/completions", {"model": "m", "messages": [{}], "n": "1"}, 400),  # "1" is not 1
    ],
)
def test_fuzzer_findings_are_400(tmp_path, method, path, body, status):
    app = create_app(ServeSettings(data_dir=tmp_path))
    headers = {"Authorization": f"Bearer {create_key(app.state.service.engine, 'k')[1]}"}
    r = TestClient(app).request(method.upper(), path, headers=headers, json=body)
    assert r.status_code == status and r.json()["error"]["param"], r.text


def test_events_cursor_that_is_no_event_id_is_400(tmp_path):
    app = create_app(ServeSettings(data_dir=tmp_path))
    engine = app.state.service.engine
    key = create_key(engine, "k")
    with app.state.service.sf() as s:  # a job of this key, as the API creates one
        s.add(Job(id="ftjob-1", owner=key[0], model="m", model_path="m", method={"type": "supervised"},
                  training_file="f", status="queued", run_dir=str(tmp_path)))  # fmt: skip
        s.commit()
    client = TestClient(app)
    for after in ("ftevent-²", "ftevent-99999999999999999999", "x"):  # were 500s (ValueError, overflow)
        r = client.get(
            f"/v1/fine_tuning/jobs/ftjob-1/events?after={after}",
            headers={"Authorization": f"Bearer {key[1]}"},
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "after", (after, r.text)


def test_405_allows_every_method_of_the_path(tmp_path):
    client = TestClient(create_app(ServeSettings(data_dir=tmp_path)))
    assert client.request("PUT", "/v1/files").headers["allow"] == "GET, POST"  # Starlette said POST
