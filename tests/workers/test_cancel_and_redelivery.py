"""Cancel while queued and while running; duplicated or redelivered tasks change nothing."""

from __future__ import annotations

import pytest

from genq.broker import make_celery, publish_job
from storage import jobs
from storage.models import Artifact

SLOW = {
    "model": "tiny-sd-slow",
    "input": {"prompt": "slow", "width": 256, "height": 256, "num_inference_steps": 400},
}


@pytest.fixture(scope="module")
def celery(settings):
    return make_celery(settings, "genq-test-publisher")


def drain(client, auth, wait_for) -> None:
    """Jobs run one at a time in FIFO order: once a job submitted now finishes, every task
    published before it has been handled."""
    job = client.post("/v1/jobs", json={"model": "noop"}, headers=auth).get_json()
    assert wait_for(job["id"], auth)["status"] == "succeeded"


def test_cancel_queued_job_is_immediate_and_final(
    client, auth, unpublished_job, settings, celery, worker, wait_for
):
    job = unpublished_job()
    response = client.post(f"/v1/jobs/{job.id}/cancel", headers=auth)
    assert response.status_code == 202
    assert response.get_json()["status"] == "canceled"
    # A task delivered afterwards finds nothing to do.
    publish_job(celery, job.id, settings.queue)
    drain(client, auth, wait_for)
    after = client.get(f"/v1/jobs/{job.id}", headers=auth).get_json()
    assert after["status"] == "canceled"
    assert after["attempt"] == 0
    assert after["started_at"] is None


def test_cancel_running_job_stops_within_one_step(client, auth, worker, wait_for, session):
    job = client.post("/v1/jobs", json=SLOW, headers=auth).get_json()
    running = wait_for(job["id"], auth, until=lambda j: (j["progress"] or {}).get("step", 0) >= 2)
    assert running["status"] == "running"
    response = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert response.status_code == 202
    seen = response.get_json()["progress"]["step"]
    done = wait_for(job["id"], auth)
    assert done["status"] == "canceled"
    assert done["progress"]["step"] <= seen + 1  # the next step's check stopped it
    assert done["progress"]["step"] < done["progress"]["total_steps"]
    assert done["artifacts"] == []  # decoding was skipped
    types = [e.type for e in jobs.events_of(session, job["id"])]
    assert "cancel_requested" in types and types[-1] == "canceled"


def test_cancel_finished_job_conflicts(client, auth, worker, wait_for):
    job = client.post("/v1/jobs", json={"model": "noop"}, headers=auth).get_json()
    wait_for(job["id"], auth)
    response = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert response.status_code == 409
    assert response.get_json()["detail"].endswith("already succeeded")


def test_duplicated_task_changes_nothing(client, auth, settings, celery, worker, wait_for, session):
    body = {"model": "tiny-sd", "input": {"prompt": "twice", "num_inference_steps": 2}}
    job = client.post("/v1/jobs", json=body, headers=auth).get_json()
    publish_job(celery, job["id"], settings.queue)  # a second copy while the first is queued
    first = wait_for(job["id"], auth)
    assert first["status"] == "succeeded"
    publish_job(celery, job["id"], settings.queue)  # and a redelivery after it finished
    drain(client, auth, wait_for)
    again = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert again["attempt"] == 1
    assert again["completed_at"] == first["completed_at"]
    assert [a["sha256"] for a in again["artifacts"]] == [a["sha256"] for a in first["artifacts"]]
    rows = session.query(Artifact).filter(Artifact.job_id == job["id"]).count()
    assert rows == 1
    types = [e.type for e in jobs.events_of(session, job["id"])]
    assert types.count("running") == 1 and types.count("succeeded") == 1


def test_only_one_of_concurrent_claims_wins(unpublished_job, settings):
    from concurrent.futures import ThreadPoolExecutor

    from storage.db import session_factory

    job = unpublished_job()

    def claim(_):
        with session_factory(settings.database_url)() as s:
            return jobs.claim(s, job.id, lease_s=30, max_attempts=3) is not None

    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(claim, range(8)))
    assert wins.count(True) == 1


def test_stale_attempt_cannot_complete(session, unpublished_job):
    job = unpublished_job()
    first = jobs.claim(session, job.id, lease_s=-1, max_attempts=3).attempt  # lease over
    second = jobs.claim(session, job.id, lease_s=30, max_attempts=3).attempt
    assert (first, second) == (1, 2)
    assert not jobs.complete(session, job.id, 1, output={}, metrics={}, progress={}, artifacts=[])
    with pytest.raises(jobs.LeaseLost):
        jobs.report_progress(session, job.id, 1, step=1, total_steps=2, phase="x", lease_s=30)
    assert jobs.complete(session, job.id, 2, output={}, metrics={}, progress={}, artifacts=[])


def test_lease_is_kept_while_a_slow_step_runs(session, unpublished_job, settings):
    """A load or step longer than the lease does not let the reconciler take the job."""
    import time
    from dataclasses import replace

    from storage.db import as_utc, utcnow
    from workers.job import lease_kept

    quick = replace(settings, lease_s=0.3)
    job = unpublished_job()
    claimed = jobs.claim(session, job.id, lease_s=quick.lease_s, max_attempts=3)
    with lease_kept(quick, job.id, claimed.attempt):
        time.sleep(1.0)  # three leases long
        session.expire_all()
        assert as_utc(jobs.get_job(session, job.id).lease_until) > utcnow()
