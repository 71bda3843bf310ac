"""Sending webhook deliveries: sign, POST to the vetted address, log, schedule the retry.

Runs on its own queue (``GENQ_WEBHOOK_QUEUE``) so GPU workers never wait on the network.
The retry schedule lives in the database (``next_attempt_at``); a periodic task and a kick
after each job event send whatever is due, so no retry hides in a long Celery countdown.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from sqlalchemy.orm import Session

from genq.settings import Settings
from genq.webhooks import UnsafeURL, check_url, honour_retry_after, next_delay, send
from genq.webhooks.signing import headers
from storage import jobs, webhooks
from storage.db import session_factory, utcnow
from storage.models import JobEvent, WebhookDelivery
from storage.objects import make_store
from storage.serialize import event_payload

log = logging.getLogger("genq.webhooks")


def deliver_due(settings: Settings) -> int:
    """Send every delivery that is due now; returns how many attempts were made.

    Deliveries are claimed one at a time: a claim lasts one attempt's timeout plus slack, so
    a claim taken long before its send could lapse and let another sender post it too.
    """
    made = 0
    with session_factory(settings.database_url)() as session:
        while batch := webhooks.take_due(session, limit=1, lease_s=settings.webhook_timeout_s + 30):
            deliver_one(session, batch[0], settings)
            made += 1
    return made


def _payload(session: Session, delivery: WebhookDelivery, settings: Settings) -> str:
    """The body, built once from the event and the job and then kept for every retry."""
    if delivery.payload is None:
        event = session.get(JobEvent, delivery.event_id)
        job = jobs.get_job(session, delivery.job_id)
        artifacts = jobs.artifacts_of(session, delivery.job_id)
        body = event_payload(event, job, artifacts, make_store(settings), settings)
        webhooks.set_payload(session, delivery, json.dumps(body, separators=(",", ":")))
    return delivery.payload


def deliver_one(session: Session, delivery: WebhookDelivery, settings: Settings) -> None:
    if webhooks.endpoint_disabled(session, delivery.owner, delivery.url):
        webhooks.finish_without_attempt(session, delivery, "endpoint disabled (410 Gone)")
        return
    body = _payload(session, delivery, settings).encode()
    started_at = utcnow()
    try:
        # Checked again at every attempt: DNS may now point somewhere it must not.
        target = check_url(delivery.url, settings.webhook_allowed)
    except UnsafeURL as exc:
        _after(session, delivery, settings, started_at, None, 0.0, f"refused: {exc}", "", None)
        return
    secrets = [s.secret for s in webhooks.active_secrets(session, delivery.owner)]
    signed = headers(secrets, delivery.id, int(time.time()), body)
    outcome = send(target, body, signed, timeout_s=settings.webhook_timeout_s)
    if outcome.ok:
        final = webhooks.SUCCEEDED
    elif outcome.gone:
        webhooks.disable_endpoint(session, delivery.owner, delivery.url, "410 Gone")
        final = webhooks.FAILED
    else:
        final = None
    _after(
        session,
        delivery,
        settings,
        started_at,
        outcome.status_code,
        outcome.latency_ms,
        outcome.error,
        outcome.response_excerpt,
        final,
        outcome.retry_after_s,
    )


def _after(
    session: Session,
    delivery: WebhookDelivery,
    settings: Settings,
    started_at,
    status_code: int | None,
    latency_ms: float,
    error: str | None,
    excerpt: str,
    final: str | None,
    retry_after_s: float | None = None,
) -> None:
    next_at = None
    if final is None:
        delay = next_delay(delivery.attempts + 1, scale=settings.webhook_schedule_scale)
        if delay is None:
            final = webhooks.FAILED  # the schedule is exhausted: failed, and kept
        else:
            delay = honour_retry_after(delay, retry_after_s)
            next_at = utcnow() + timedelta(seconds=delay)
    webhooks.record_attempt(
        session,
        delivery,
        started_at=started_at,
        status_code=status_code,
        latency_ms=latency_ms,
        error=error,
        response_excerpt=excerpt,
        next_attempt_at=next_at,
        final_status=final,
    )
    log.info(
        "webhook %s attempt %d to %s: %s",
        delivery.id,
        delivery.attempts,
        delivery.url,
        status_code or error,
    )
