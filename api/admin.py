"""The admin dashboard: ``/admin/`` (a page) over ``/v1/admin/*`` (JSON, admin keys only).

Admins see every owner's jobs: counts by status and model, queue depths, latency
percentiles, recent failures and webhook deliveries that are failing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select

from api.auth import caller
from api.errors import Problem, invalid
from api.services import db, services
from genq.broker import CONTROL_QUEUE
from storage.db import utcnow
from storage.models import STATUSES, Job, WebhookDelivery
from storage.serialize import iso

bp = Blueprint("admin", __name__)

PAGE = Path(__file__).with_name("admin.html")


def require_admin() -> None:
    if not caller().is_admin:
        raise Problem(403, "Forbidden", "this endpoint needs an admin key", kind="forbidden")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


def _queue_depths() -> dict[str, int | None]:
    svc = services()
    names = [svc.settings.queue, CONTROL_QUEUE, svc.settings.webhook_queue]
    try:
        with svc.celery.connection_for_read() as conn:
            client = conn.default_channel.client
            return {name: int(client.llen(name)) for name in names}
    except Exception:  # the dashboard still shows the rest when the broker is down
        return dict.fromkeys(names)


@bp.get("/v1/admin/summary")
def summary() -> Response:
    """Everything the dashboard shows, in one answer."""
    require_admin()
    session = db()
    since = utcnow() - timedelta(hours=1)
    by_status = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    by_model = [
        {"model": model, "status": status, "count": count}
        for model, status, count in session.execute(
            select(Job.model, Job.status, func.count()).group_by(Job.model, Job.status)
        )
    ]
    recent = session.execute(
        select(Job.metrics).where(Job.completed_at >= since, Job.status == "succeeded")
    ).scalars()
    metrics = [m for m in recent if m]
    failures = session.scalars(
        select(Job).where(Job.status == "failed").order_by(Job.completed_at.desc()).limit(20)
    )
    deliveries = dict(
        session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        ).all()
    )
    return jsonify(
        {
            "jobs": {s: by_status.get(s, 0) for s in STATUSES},
            "by_model": by_model,
            "queues": _queue_depths(),
            "last_hour": {
                "succeeded": len(metrics),
                "queue_s_p50": _percentile([m.get("queue_s", 0) for m in metrics], 0.5),
                "queue_s_p95": _percentile([m.get("queue_s", 0) for m in metrics], 0.95),
                "run_s_p50": _percentile([m.get("run_s", 0) for m in metrics], 0.5),
                "run_s_p95": _percentile([m.get("run_s", 0) for m in metrics], 0.95),
            },
            "recent_failures": [
                {
                    "id": j.id,
                    "owner": j.owner,
                    "model": j.model,
                    "error": j.error,
                    "completed_at": iso(j.completed_at),
                }
                for j in failures
            ],
            "webhook_deliveries": {
                s: deliveries.get(s, 0) for s in ("pending", "succeeded", "failed")
            },
        }
    )


@bp.get("/v1/admin/jobs")
def all_jobs() -> Response:
    """Every owner's jobs, newest first (filters: owner, status, model; limit ≤ 200)."""
    require_admin()
    limit_raw = request.args.get("limit", "50")
    if not (limit_raw.isascii() and limit_raw.isdigit() and 1 <= int(limit_raw) <= 200):
        raise invalid([{"field": "limit", "message": "must be 1-200"}])
    query = select(Job).order_by(Job.created_at.desc()).limit(int(limit_raw))
    for name in ("owner", "status", "model"):
        if value := request.args.get(name):
            query = query.where(getattr(Job, name) == value)
    return jsonify(
        {
            "data": [
                {
                    "id": j.id,
                    "owner": j.owner,
                    "model": j.model,
                    "kind": j.kind,
                    "status": j.status,
                    "progress": j.progress,
                    "attempt": j.attempt,
                    "error": j.error,
                    "created_at": iso(j.created_at),
                    "completed_at": iso(j.completed_at),
                }
                for j in db().scalars(query)
            ]
        }
    )


@bp.get("/admin/")
def dashboard() -> Response:
    """The dashboard page; it asks for an admin key and reads ``/v1/admin/*``."""
    return Response(PAGE.read_text(), mimetype="text/html")
