"""The reconciler: lost workers' jobs go back to the queue, lost tasks are republished."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from genq import settings as genq_settings
from storage import jobs
from storage.db import utcnow
from storage.models import Job


@pytest.fixture
def reconcile_task(settings, monkeypatch):
    """The real Celery task, run in-process with this run's settings."""
    monkeypatch.setattr(genq_settings, "_cached", settings)
    from workers import celery as worker_celery
    from workers import tasks

    monkeypatch.setattr(worker_celery.app.conf, "broker_url", settings.broker_url)
    return tasks.reconcile


def make_job(session, unpublished_job, **values) -> str:
    job = unpublished_job()
    if values:
        session.execute(update(Job).where(Job.id == job.id).values(**values))
        session.commit()
    return job.id


def status(session, job_id: str) -> Job:
    session.expire_all()
    return jobs.get_job(session, job_id)


def test_expired_lease_returns_job_to_queue(session, unpublished_job):
    job_id = make_job(
        session,
        unpublished_job,
        status="running",
        attempt=1,
        lease_until=utcnow() - timedelta(seconds=5),
    )
    result = jobs.reconcile(session, republish_after_s=300, max_attempts=3)
    assert job_id in [j for j, _ in result.republish]
    job = status(session, job_id)
    assert job.status == "queued" and job.lease_until is None
    last = jobs.events_of(session, job_id)[-1]
    assert last.type == "queued" and last.data["reason"] == "lease_expired"


def test_expired_lease_past_attempt_cap_fails(session, unpublished_job):
    job_id = make_job(
        session,
        unpublished_job,
        status="running",
        attempt=3,
        lease_until=utcnow() - timedelta(seconds=5),
    )
    jobs.reconcile(session, republish_after_s=300, max_attempts=3)
    job = status(session, job_id)
    assert job.status == "failed"
    assert job.error["code"] == "worker_lost"


def test_live_lease_and_fresh_queue_are_left_alone(session, unpublished_job):
    running = make_job(
        session,
        unpublished_job,
        status="running",
        attempt=1,
        lease_until=utcnow() + timedelta(seconds=60),
    )
    queued = make_job(session, unpublished_job)
    result = jobs.reconcile(session, republish_after_s=300, max_attempts=3)
    republished = [j for j, _ in result.republish]
    assert running not in republished and queued not in republished
    assert status(session, running).status == "running"


def test_never_published_job_is_republished_and_runs(
    session, unpublished_job, settings, worker, reconcile_task, auth, wait_for
):
    # Committed but never published: the API died between the two.
    job = unpublished_job(queue=settings.queue)
    session.execute(
        update(Job).where(Job.id == job.id).values(enqueued_at=utcnow() - timedelta(hours=1))
    )
    session.commit()
    counts = reconcile_task.apply().get()
    assert counts["republished"] >= 1
    assert wait_for(job.id, auth)["status"] == "succeeded"


def test_expired_lease_of_a_canceled_job_finishes_it(session, unpublished_job):
    job_id = make_job(
        session,
        unpublished_job,
        status="running",
        attempt=1,
        cancel_requested=True,
        lease_until=utcnow() - timedelta(seconds=5),
    )
    result = jobs.reconcile(session, republish_after_s=300, max_attempts=3)
    assert job_id not in [j for j, _ in result.republish]
    assert status(session, job_id).status == "canceled"


def test_republishing_backs_off_for_a_long_backlog(session, unpublished_job):
    now = utcnow()
    # Published an hour ago and never since: republished.
    lost = make_job(
        session,
        unpublished_job,
        created_at=now - timedelta(hours=1),
        enqueued_at=now - timedelta(hours=1),
    )
    # Created an hour ago, republished ten minutes ago: it waited 50 minutes before that,
    # so it is left alone until it has waited 50 minutes again.
    waiting = make_job(
        session,
        unpublished_job,
        created_at=now - timedelta(hours=1),
        enqueued_at=now - timedelta(minutes=10),
    )
    republished = [
        j for j, _ in jobs.reconcile(session, republish_after_s=300, max_attempts=3).republish
    ]
    assert lost in republished and waiting not in republished
