"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select, text

from api.services import db, services
from storage.models import STATUSES, Job

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; says nothing about its dependencies."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when the database, the broker and the object store all answer."""
    svc, checks = services(), {}
    try:
        db().execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc}"
    try:
        with svc.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {exc}"
    try:
        svc.store.check()
        checks["object_store"] = "ok"
    except Exception as exc:
        checks["object_store"] = f"error: {exc}"
    ready = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ready" if ready else "not ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """Job counts by status, in Prometheus text format."""
    counts = dict(db().execute(select(Job.status, func.count()).group_by(Job.status)).all())
    lines = ["# HELP genq_jobs Jobs by status.", "# TYPE genq_jobs gauge"]
    lines += [f'genq_jobs{{status="{s}"}} {counts.get(s, 0)}' for s in STATUSES]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
