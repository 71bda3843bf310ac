"""Owners are isolated: another owner's job is indistinguishable from a missing one."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage import jobs
from storage.models import Artifact, Job
from storage.objects import artifact_key


@pytest.fixture
def alice_job(session, settings, owner) -> str:
    """A queued job of alice's that no worker will run (it is never published)."""
    job, created = jobs.create_job(
        session,
        owner=owner,
        kind="noop",
        model="noop",
        input={"seed": 1},
        seed=1,
        queue=f"{settings.queue}.unconsumed",
    )
    assert created
    return job.id


def test_another_owner_cannot_read_it(client, auth, other_auth, alice_job):
    assert client.get(f"/v1/jobs/{alice_job}", headers=auth).status_code == 200
    response = client.get(f"/v1/jobs/{alice_job}", headers=other_auth)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    # The same answer as for a job that never existed.
    missing = client.get("/v1/jobs/00000000-0000-0000-0000-000000000000", headers=other_auth)
    assert missing.status_code == 404
    assert response.get_json()["title"] == missing.get_json()["title"]
    assert "alice" not in response.get_data(as_text=True)


def test_another_owner_cannot_cancel_it(client, auth, other_auth, alice_job, session):
    response = client.post(f"/v1/jobs/{alice_job}/cancel", headers=other_auth)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    session.expire_all()
    job = session.get(Job, alice_job)
    assert job.status == "queued"
    assert job.cancel_requested is False
    types = {e.type for e in jobs.events_of(session, alice_job)}
    assert not types & {"canceled", "cancel_requested"}  # nor was a cancel recorded
    # Its owner can.
    mine = client.post(f"/v1/jobs/{alice_job}/cancel", headers=auth)
    assert mine.status_code == 202
    assert mine.get_json()["status"] == "canceled"


def test_another_owners_list_does_not_contain_it(client, auth, other_auth, alice_job):
    theirs = client.get("/v1/jobs?limit=100", headers=other_auth).get_json()
    assert alice_job not in [j["id"] for j in theirs["data"]]
    assert theirs["data"] == []  # bob is fresh: he sees nothing of anyone else's
    mine = client.get("/v1/jobs", headers=auth).get_json()
    assert [j["id"] for j in mine["data"]] == [alice_job]


def test_artifact_keys_are_under_the_owner(
    client, auth, other_auth, owner, worker, wait_for, session
):
    body = {"model": "tiny-sd", "input": {"prompt": "keys", "num_images": 2, "seed": 3}}
    submitted = client.post("/v1/jobs", json=body, headers=auth)
    assert submitted.status_code == 202
    job_id = submitted.get_json()["id"]
    done = wait_for(job_id, auth)
    assert done["status"] == "succeeded", done["error"]

    session.expire_all()
    keys = [
        (a.n, a.key) for a in session.scalars(select(Artifact).where(Artifact.job_id == job_id))
    ]
    assert sorted(keys) == [
        (0, artifact_key(owner, job_id, 0)),
        (1, artifact_key(owner, job_id, 1)),
    ]
    assert all(k.startswith(f"{owner}/{job_id}/") for _, k in keys)
    assert client.get(f"/v1/jobs/{job_id}", headers=other_auth).status_code == 404
