"""The retry state in the database: Retry-After, exhaustion (failed, never dropped)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import update

from storage import jobs, webhooks
from storage.db import utcnow
from storage.models import WebhookDelivery
from storage.webhooks import Subscription
from workers.webhooks import deliver_due


def pending_delivery(session, make_job, url, **values) -> str:
    job = make_job(webhook_url=url, webhook_events=["completed"])
    claimed = jobs.claim(session, job.id, lease_s=30, max_attempts=3)
    jobs.complete(
        session, job.id, claimed.attempt, output={}, metrics={}, progress={}, artifacts=[]
    )
    (delivery,) = webhooks.deliveries_of(session, job.id)
    if values:
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values)
        )
        session.commit()
    return delivery.id


def reload(session, delivery_id) -> WebhookDelivery:
    session.expire_all()
    return session.get(WebhookDelivery, delivery_id)


def test_retry_after_is_honoured(session, unpublished_job, settings, receiver):
    receiver.script(receiver.Reply(status=503, headers={"Retry-After": "120"}))
    delivery_id = pending_delivery(session, unpublished_job, receiver.url)
    deliver_due(settings)
    delivery = reload(session, delivery_id)
    assert delivery.status == "pending" and delivery.attempts == 1
    wait = (delivery.next_attempt_at - utcnow()).total_seconds()
    assert 110 < wait <= 120  # the receiver's 120 s, not the scaled schedule's 0.5 ms


def test_exhausted_delivery_is_failed_and_kept(session, unpublished_job, settings, receiver):
    receiver.script(500)
    delivery_id = pending_delivery(session, unpublished_job, receiver.url, attempts=9)
    deliver_due(settings)
    delivery = reload(session, delivery_id)
    assert delivery.status == "failed" and delivery.attempts == 10
    assert delivery.next_attempt_at is None and delivery.completed_at is not None
    assert delivery.last_error == "HTTP 500"


def test_schedule_is_kept_in_the_database(session, unpublished_job, settings, receiver):
    receiver.script(500)
    delivery_id = pending_delivery(session, unpublished_job, receiver.url)
    before = utcnow()
    deliver_due(replace(settings, webhook_schedule_scale=1.0))
    delivery = reload(session, delivery_id)
    assert delivery.status == "pending" and delivery.attempts == 1
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 4.5 - 0.1 < wait < 5.5 + 1  # the schedule's second slot, 5 s ± 10 % jitter


def test_two_senders_never_take_the_same_delivery(session, unpublished_job, settings):
    delivery_id = pending_delivery(
        session,
        unpublished_job,
        "http://127.0.0.1:9/",
        next_attempt_at=utcnow() - timedelta(seconds=1),
    )
    first = webhooks.take_due(session, limit=10, lease_s=60)
    second = webhooks.take_due(session, limit=10, lease_s=60)
    assert delivery_id in [d.id for d in first]
    assert delivery_id not in [d.id for d in second]


def test_subscription_filters_events():
    sub = Subscription("o", "http://x", ("start", "completed"))
    assert sub.wants("running") and sub.wants("failed") and sub.wants("canceled")
    assert not sub.wants("progress") and not sub.wants("queued")
