"""Idempotency-Key: a retried submit returns the first job instead of running it twice."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from storage.models import Job

BODY = {"model": "noop", "input": {"seed": 11}}


def rows(session, owner: str) -> list[Job]:
    session.expire_all()
    return list(session.scalars(select(Job).where(Job.owner == owner)))


def submit(client, auth, body, key):
    return client.post("/v1/jobs", json=body, headers={**auth, "Idempotency-Key": key})


def test_same_key_and_body_replays_the_first_job(client, auth, owner, session):
    key = f"k-{uuid.uuid4()}"
    first = submit(client, auth, BODY, key)
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    second = submit(client, auth, BODY, key)
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json()["id"] == first.get_json()["id"]
    assert second.get_json()["seed"] == first.get_json()["seed"] == 11
    [job] = rows(session, owner)
    assert job.id == first.get_json()["id"]
    assert job.idempotency_key == key


def test_replay_ignores_key_order_in_the_body(client, auth, owner, session):
    key = f"k-{uuid.uuid4()}"
    first = submit(client, auth, {"model": "noop", "input": {"seed": 3, "width": 64}}, key)
    reordered = {"input": {"width": 64, "seed": 3}, "model": "noop"}
    second = submit(client, auth, reordered, key)
    assert second.status_code == 200
    assert second.get_json()["id"] == first.get_json()["id"]
    assert len(rows(session, owner)) == 1


def test_without_a_key_each_submit_is_a_new_job(client, auth, owner, session):
    ids = {client.post("/v1/jobs", json=BODY, headers=auth).get_json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert {j.id for j in rows(session, owner)} == ids


def test_same_key_with_another_body_is_422(client, auth, owner, session):
    key = f"k-{uuid.uuid4()}"
    first = submit(client, auth, BODY, key)
    assert first.status_code == 202
    response = submit(client, auth, {"model": "noop", "input": {"seed": 12}}, key)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    [job] = rows(session, owner)  # nothing new, and the first job is untouched
    assert job.id == first.get_json()["id"]
    assert job.seed == 11


def test_same_key_for_another_owner_is_an_independent_job(client, auth, other_auth, owner, session):
    key = f"k-{uuid.uuid4()}"
    mine = submit(client, auth, BODY, key)
    theirs = submit(client, other_auth, BODY, key)
    assert mine.status_code == theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.get_json()["id"] != theirs.get_json()["id"]
    assert [j.id for j in rows(session, owner)] == [mine.get_json()["id"]]
    # Each owner still replays its own job.
    again = submit(client, other_auth, BODY, key)
    assert again.status_code == 200
    assert again.get_json()["id"] == theirs.get_json()["id"]


def test_key_over_255_characters_is_refused(client, auth, owner, session):
    response = submit(client, auth, BODY, "k" * 256)
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["Idempotency-Key"]
    assert rows(session, owner) == []
    assert submit(client, auth, BODY, "k" * 255).status_code == 202
