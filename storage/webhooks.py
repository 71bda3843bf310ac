"""Webhook state: owners' signing secrets, deliveries and their attempt log.

A delivery row is written in the same transaction as the job event it announces, so an event
that happened is an event that will be delivered (or visibly fail): nothing is dropped
between the two. Sending happens elsewhere (``workers/webhooks.py``); here are only the
rows and their compare-and-set transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genq.webhooks.signing import new_message_id, new_secret
from storage.db import utcnow
from storage.models import DisabledEndpoint, WebhookAttempt, WebhookDelivery, WebhookSecret
from storage.serialize import EVENT_TYPES

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
FILTERS = ("start", "progress", "completed")
# Which subscription filter each stored event type belongs to.
EVENT_FILTER = {
    "running": "start",
    "progress": "progress",
    "succeeded": "completed",
    "failed": "completed",
    "canceled": "completed",
}


@dataclass(frozen=True)
class Subscription:
    owner: str
    url: str
    events: tuple[str, ...]
    progress_webhook_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> Subscription | None:
        if not getattr(row, "webhook_url", None):
            return None
        return cls(
            row.owner,
            row.webhook_url,
            tuple(row.webhook_events or ("completed",)),
            getattr(row, "progress_webhook_at", None),
        )

    def wants(self, event_type: str) -> bool:
        return EVENT_FILTER.get(event_type) in self.events


def enqueue(
    session: Session,
    job_id: str,
    sub: Subscription,
    event_type: str,
    event_id: int,
    now: datetime,
) -> str:
    """Add the delivery for one event (inside the caller's transaction)."""
    delivery_id = new_message_id()
    session.execute(
        WebhookDelivery.__table__.insert(),
        {
            "id": delivery_id,
            "owner": sub.owner,
            "job_id": job_id,
            "event_id": event_id,
            "event_type": EVENT_TYPES.get(event_type, f"job.{event_type}"),
            "url": sub.url,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    return delivery_id


# --- secrets ------------------------------------------------------------------------------


def active_secrets(session: Session, owner: str) -> list[WebhookSecret]:
    """The owner's secrets that still sign, newest first; one is made on first use."""
    now = utcnow()
    rows = list(
        session.scalars(
            select(WebhookSecret)
            .where(
                WebhookSecret.owner == owner,
                or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
            )
            .order_by(WebhookSecret.id.desc())
        )
    )
    if rows:
        return rows
    secret = WebhookSecret(owner=owner, secret=new_secret(), created_at=now)
    session.add(secret)
    session.commit()
    return [secret]


def rotate_secret(session: Session, owner: str, overlap_s: float) -> list[WebhookSecret]:
    """Add a new secret; the current ones keep signing for ``overlap_s`` more seconds."""
    now = utcnow()
    active_secrets(session, owner)
    session.execute(
        update(WebhookSecret)
        .where(WebhookSecret.owner == owner, WebhookSecret.expires_at.is_(None))
        .values(expires_at=now + timedelta(seconds=overlap_s))
    )
    session.add(WebhookSecret(owner=owner, secret=new_secret(), created_at=now))
    session.commit()
    return active_secrets(session, owner)


# --- delivery transitions -----------------------------------------------------------------


def take_due(session: Session, *, limit: int, lease_s: float) -> list[WebhookDelivery]:
    """Claim due deliveries for one sender: each is pushed ``lease_s`` into the future by a
    compare-and-set, so two senders never send the same attempt."""
    now = utcnow()
    due = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    ).all()
    taken = []
    for delivery_id, when in due:
        row = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at == when,
            )
            .values(next_attempt_at=now + timedelta(seconds=lease_s))
            .returning(WebhookDelivery.id)
        ).one_or_none()
        if row is not None:
            taken.append(delivery_id)
    session.commit()
    if not taken:
        return []
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(taken))))


def set_payload(session: Session, delivery: WebhookDelivery, payload: str) -> None:
    delivery.payload = payload
    session.commit()


def record_attempt(
    session: Session,
    delivery: WebhookDelivery,
    *,
    started_at: datetime,
    status_code: int | None,
    latency_ms: float,
    error: str | None,
    response_excerpt: str,
    next_attempt_at: datetime | None,
    final_status: str | None,
) -> None:
    """Log the attempt and move the delivery on: retry at ``next_attempt_at``, or finish."""
    n = delivery.attempts + 1
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            n=n,
            started_at=started_at,
            status_code=status_code,
            latency_ms=round(latency_ms, 3),
            error=error,
            response_excerpt=response_excerpt,
        )
    )
    delivery.attempts = n
    delivery.last_error = error or (None if final_status == SUCCEEDED else f"HTTP {status_code}")
    if final_status is not None:
        delivery.status = final_status
        delivery.completed_at = utcnow()
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = next_attempt_at
    session.commit()


def finish_without_attempt(session: Session, delivery: WebhookDelivery, reason: str) -> None:
    delivery.status = FAILED
    delivery.last_error = reason
    delivery.completed_at = utcnow()
    delivery.next_attempt_at = None
    session.commit()


def redeliver(session: Session, delivery_id: str, owner: str) -> WebhookDelivery | None:
    """Send a delivery again (same ``webhook-id``), whatever became of it."""
    delivery = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.owner == owner
        )
    ).one_or_none()
    if delivery is None:
        return None
    delivery.status = PENDING
    delivery.next_attempt_at = utcnow()
    delivery.completed_at = None
    session.commit()
    return delivery


# --- endpoints ----------------------------------------------------------------------------


def disable_endpoint(session: Session, owner: str, url: str, reason: str) -> None:
    try:
        session.add(DisabledEndpoint(owner=owner, url=url, reason=reason, disabled_at=utcnow()))
        session.commit()
    except IntegrityError:
        session.rollback()


def endpoint_disabled(session: Session, owner: str, url: str) -> bool:
    return (
        session.scalar(
            select(DisabledEndpoint.id).where(
                DisabledEndpoint.owner == owner, DisabledEndpoint.url == url
            )
        )
        is not None
    )


# --- reads --------------------------------------------------------------------------------


def deliveries_of(session: Session, job_id: str) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.event_id)
        )
    )


def attempts_of(session: Session, delivery_ids: list[str]) -> dict[str, list[WebhookAttempt]]:
    result: dict[str, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    for attempt in session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.n)
    ):
        result[attempt.delivery_id].append(attempt)
    return result
