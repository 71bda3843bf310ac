"""Webhook deliveries and signing secrets: the log, redelivery and rotation."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.auth import caller
from api.errors import not_found
from api.services import db, services
from genq.broker import kick_webhooks
from storage import jobs, webhooks
from storage.models import WebhookAttempt, WebhookDelivery, WebhookSecret
from storage.serialize import iso

bp = Blueprint("webhooks", __name__)


def _attempt(a: WebhookAttempt) -> dict:
    return {
        "n": a.n,
        "started_at": iso(a.started_at),
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "response_excerpt": a.response_excerpt,
    }


def _delivery(d: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict:
    return {
        "id": d.id,
        "job_id": d.job_id,
        "event_type": d.event_type,
        "url": d.url,
        "status": d.status,
        "attempts": [_attempt(a) for a in attempts],
        "next_attempt_at": iso(d.next_attempt_at),
        "last_error": d.last_error,
        "created_at": iso(d.created_at),
        "completed_at": iso(d.completed_at),
    }


def _secret(s: WebhookSecret) -> dict:
    return {"secret": s.secret, "created_at": iso(s.created_at), "expires_at": iso(s.expires_at)}


@bp.get("/v1/jobs/<job_id>/deliveries")
def job_deliveries(job_id: str) -> Response:
    """Every webhook delivery of a job, with its full attempt log."""
    session = db()
    if jobs.get_job(session, job_id, caller().owner) is None:
        raise not_found(f"job {job_id}")
    found = webhooks.deliveries_of(session, job_id)
    attempts = webhooks.attempts_of(session, [d.id for d in found])
    return jsonify({"data": [_delivery(d, attempts[d.id]) for d in found]})


@bp.post("/v1/deliveries/<delivery_id>/redeliver")
def redeliver(delivery_id: str) -> Response:
    """Send a delivery again, with the same webhook-id."""
    session = db()
    delivery = webhooks.redeliver(session, delivery_id, caller().owner)
    if delivery is None:
        raise not_found(f"delivery {delivery_id}")
    kick_webhooks(services().celery)
    response = jsonify(
        _delivery(delivery, webhooks.attempts_of(session, [delivery.id])[delivery.id])
    )
    response.status_code = 202
    return response


@bp.get("/v1/webhooks/secret")
def get_secret() -> Response:
    """The caller's signing secrets (``whsec_…``), newest first; made on first request."""
    return jsonify({"data": [_secret(s) for s in webhooks.active_secrets(db(), caller().owner)]})


@bp.post("/v1/webhooks/secret/rotate")
def rotate_secret() -> Response:
    """Add a new secret; the old one keeps signing during the overlap."""
    secrets = webhooks.rotate_secret(
        db(), caller().owner, services().settings.webhook_secret_overlap_s
    )
    return jsonify({"data": [_secret(s) for s in secrets]})
