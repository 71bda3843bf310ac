"""Refused requests: every one is a problem+json answer naming the bad field, and none
of them creates a job (bad input never reaches a worker)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from storage.models import Job

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def jobs_of(session, owner: str) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Job).where(Job.owner == owner))


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert set(problem) >= PROBLEM_KEYS
    assert problem["status"] == status
    assert problem["type"].startswith("https://")
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


def fields_of(problem: dict) -> list[str]:
    assert problem["errors"], problem
    for error in problem["errors"]:
        assert isinstance(error["message"], str) and error["message"]
    return [e["field"] for e in problem["errors"]]


def image(**input_):
    return {"model": "tiny-sd", "input": {"prompt": "a fox", **input_}}


INVALID = [
    pytest.param({"input": {"prompt": "x"}}, "model", id="missing-model"),
    pytest.param({"model": "no-such-model", "input": {"prompt": "x"}}, "model", id="unknown-model"),
    pytest.param({"model": "", "input": {"prompt": "x"}}, "model", id="empty-model"),
    pytest.param({"model": 5}, "model", id="model-not-a-string"),
    pytest.param(image(width=60), "input.width", id="width-not-multiple-of-8"),
    pytest.param(image(width=256), "input.width", id="width-over-model-max"),
    pytest.param(image(height=4), "input.height", id="height-under-min"),
    pytest.param(image(num_inference_steps=21), "input.num_inference_steps", id="steps-over-max"),
    pytest.param(image(num_inference_steps=0), "input.num_inference_steps", id="steps-zero"),
    pytest.param(image(num_images=4), "input.num_images", id="images-over-max"),
    pytest.param(image(guidance_scale=-1.5), "input.guidance_scale", id="guidance-negative"),
    pytest.param(image(seed=-1), "input.seed", id="seed-negative"),
    pytest.param(image(seed=2**63), "input.seed", id="seed-over-int64"),
    pytest.param(image(seed="5"), "input.seed", id="seed-as-string"),
    pytest.param(image(width="64"), "input.width", id="width-as-string"),
    pytest.param(image(width=64.0), "input.width", id="width-as-float"),
    pytest.param(image(foo=1), "input.foo", id="unknown-input-key"),
    pytest.param({**image(), "priority": "high"}, "priority", id="unknown-top-level-key"),
    pytest.param({"model": "tiny-sd", "input": "a fox"}, "input", id="input-not-an-object"),
    pytest.param({"model": "tiny-sd", "input": {}}, "input.prompt", id="missing-prompt"),
    pytest.param({"model": "tiny-sd"}, "input.prompt", id="missing-input"),
    pytest.param(image(prompt=""), "input.prompt", id="empty-prompt"),
    pytest.param(image(prompt="   \n"), "input.prompt", id="blank-prompt"),
    pytest.param(image(prompt=5), "input.prompt", id="prompt-not-a-string"),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_invalid_body_names_exactly_the_bad_field(client, auth, owner, session, body, field):
    response = client.post("/v1/jobs", json=body, headers=auth)
    problem = assert_problem(response, 422)
    assert fields_of(problem) == [field]
    assert field in problem["detail"]
    assert jobs_of(session, owner) == 0


def test_a_valid_body_is_accepted(client, auth, owner, session):
    """The control for the table above: the same fixtures do create a job."""
    response = client.post("/v1/jobs", json=image(width=64, seed=5), headers=auth)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["input"]["seed"] == 5
    assert jobs_of(session, owner) == 1


def test_every_bad_field_is_reported_at_once(client, auth, owner, session):
    body = image(width=60, height=512, num_inference_steps=21, num_images=4)
    problem = assert_problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    assert sorted(fields_of(problem)) == [
        "input.height",
        "input.num_images",
        "input.num_inference_steps",
        "input.width",
    ]
    body = {"model": "tiny-sd", "extra": True, "input": {"seed": "5", "width": "64"}}
    problem = assert_problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    assert sorted(fields_of(problem)) == ["extra", "input.seed", "input.width"]
    # The input's schema depends on the model, so a bad model hides input errors.
    body = {"model": 5, "extra": True, "input": {"seed": "5"}}
    problem = assert_problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    assert sorted(fields_of(problem)) == ["extra", "model"]
    assert jobs_of(session, owner) == 0


@pytest.mark.parametrize("body", [[{"model": "noop"}], "noop", 5, True], ids=repr)
def test_body_must_be_a_json_object(client, auth, owner, session, body):
    problem = assert_problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    assert fields_of(problem) == ["body"]
    assert jobs_of(session, owner) == 0


def test_invalid_json_is_422(client, auth, owner, session):
    response = client.post(
        "/v1/jobs", data='{"model": "noop",', content_type="application/json", headers=auth
    )
    problem = assert_problem(response, 422)
    assert fields_of(problem) == ["body"]
    assert jobs_of(session, owner) == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("model=noop", "application/x-www-form-urlencoded"),
        ('{"model": "noop"}', "text/plain"),
        ('{"model": "noop"}', None),
    ],
)
def test_non_json_content_type_is_415(client, auth, owner, session, data, content_type):
    response = client.post("/v1/jobs", data=data, content_type=content_type, headers=auth)
    problem = assert_problem(response, 415)
    assert "application/json" in problem["detail"]
    assert jobs_of(session, owner) == 0


@pytest.fixture(scope="module")
def small_app(settings):
    from api import create_app

    small = dataclasses.replace(settings, max_body_bytes=1000)
    return create_app({"TESTING": True, "GENQ_SETTINGS": small})


def test_body_over_the_size_limit_is_413(small_app, auth, owner, session):
    small = small_app.test_client()
    body = image(prompt="x" * 2000)
    problem = assert_problem(small.post("/v1/jobs", json=body, headers=auth), 413)
    assert problem["title"]
    assert jobs_of(session, owner) == 0
    # Just under the limit is served by the same app.
    ok = small.post("/v1/jobs", json=image(prompt="x" * 100), headers=auth)
    assert ok.status_code == 202
    assert jobs_of(session, owner) == 1


@pytest.mark.parametrize(
    ("header", "challenge"),
    [
        (None, "Bearer"),
        ("", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer   ", "Bearer"),
        ("Basic YWxpY2U6c2VjcmV0", "Bearer"),
        ("Bearer gq_not-a-real-key", 'Bearer error="invalid_token"'),
    ],
    ids=["absent", "empty", "no-token", "blank-token", "basic", "unknown-key"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/jobs"),
        ("get", "/v1/jobs"),
        ("get", "/v1/jobs/00000000-0000-0000-0000-000000000000"),
        ("post", "/v1/jobs/00000000-0000-0000-0000-000000000000/cancel"),
    ],
)
def test_missing_or_invalid_bearer_is_401(client, header, challenge, method, path):
    headers = {} if header is None else {"Authorization": header}
    response = getattr(client, method)(path, json={"model": "noop"}, headers=headers)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == challenge


def test_401_comes_before_body_checks(client, session):
    """An anonymous caller learns nothing about the body and creates nothing."""
    before = session.scalar(select(func.count()).select_from(Job))
    response = client.post("/v1/jobs", data="not json", content_type="text/plain")
    assert_problem(response, 401)
    response = client.post("/v1/jobs", json={"model": "noop"})
    assert_problem(response, 401)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Job)) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("status=QUEUED", "status"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=101", "limit"),
        ("limit=1.5", "limit"),
        ("created_after=notadate", "created_after"),
        ("created_before=yesterday", "created_before"),
        ("created_after=2024-01-01T00:00:00", "created_after"),  # no timezone
        ("cursor=garbage", "cursor"),
        ("cursor=Z2FyYmFnZQ==", "cursor"),  # base64 of "garbage": decodes, but no cursor
    ],
)
def test_list_with_bad_parameters_is_422(client, auth, query, field):
    problem = assert_problem(client.get(f"/v1/jobs?{query}", headers=auth), 422)
    assert fields_of(problem) == [field]


def test_list_reports_status_and_limit_together(client, auth):
    problem = assert_problem(client.get("/v1/jobs?status=nope&limit=0", headers=auth), 422)
    assert sorted(fields_of(problem)) == ["limit", "status"]


def test_list_with_unicode_digit_limit_is_422(client, auth):
    problem = assert_problem(client.get("/v1/jobs?limit=%C2%B2", headers=auth), 422)
    assert fields_of(problem) == ["limit"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        (
            "post",
            "/v1/jobs",
            {"json": {"model": "noop", "input": {"prompt": "a\x00b"}}},
            "body.input.prompt",
        ),
        (
            "post",
            "/v1/jobs",
            {"json": {"model": "noop"}, "headers": {"Idempotency-Key": "a\x00"}},
            "Idempotency-Key",
        ),
        ("get", "/v1/jobs?model=a%00b", {}, "model"),
        ("get", "/v1/jobs/a%00b", {}, "path"),
    ],
)
def test_nul_characters_are_refused_not_500(client, auth, method, path, kwargs, field):
    headers = {**auth, **kwargs.pop("headers", {})}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == [field]


def test_event_id_beyond_bigint_is_refused(client, auth):
    job = client.post("/v1/jobs", json={"model": "noop"}, headers=auth).get_json()
    response = client.get(f"/v1/jobs/{job['id']}/events?last_event_id=" + "9" * 25, headers=auth)
    assert response.status_code == 422
