"""``/v1/jobs``: submit, read, list and cancel generation jobs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from api.auth import caller
from api.errors import Problem, invalid, not_found
from api.guards import refuse_nul
from api.input_images import attach_input_image
from api.schemas import FieldErrors, parse_job, webhook_fields
from api.services import db, services
from genq.broker import kick_webhooks, publish_job
from pipelines.registry import ModelSpec
from storage import jobs
from storage.db import as_utc
from storage.models import STATUSES, TERMINAL, Job
from storage.serialize import job_json

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

WAIT_RE = re.compile(r"(?:^|[,;\s])wait=(\d+(?:\.\d+)?)")


def _render(
    job: Job, status: int = 200, headers: dict[str, str] | None = None, *, new: bool = False
) -> Response:
    svc = services()
    artifacts = [] if new else jobs.artifacts_of(db(), job.id)
    response = jsonify(job_json(job, artifacts, svc.store, svc.settings))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def json_body() -> Any:
    if not request.is_json:
        raise Problem(
            415,
            "Unsupported media type",
            "send the body as application/json",
            kind="unsupported-media-type",
        )
    body = request.get_json(silent=True)
    if body is None:
        raise invalid([{"field": "body", "message": "is not valid JSON"}])
    refuse_nul(body, "body")
    return body


def _wait_seconds() -> float:
    match = WAIT_RE.search(request.headers.get("Prefer", ""))
    if not match:
        return 0.0
    return min(float(match.group(1)), services().settings.max_wait_s)


def job_fields(owner: str, spec: ModelSpec, resolved: dict[str, Any], seed: int) -> dict[str, Any]:
    """The columns every new job takes from a validated request (jobs, batches, completions)."""
    return {
        "owner": owner,
        "kind": spec.kind,
        "model": spec.name,
        "input": resolved,
        "seed": seed,
        "queue": services().settings.queue,
    }


def publish(job_id: str, queue: str) -> None:
    try:
        publish_job(services().celery, job_id, queue)
    except Exception:  # the row is the outbox: the reconciler republishes it
        current_app.logger.exception("publishing job %s failed; the reconciler will", job_id)


def _replayed(job: Job, digest: str) -> Response:
    """The earlier job of a reused Idempotency-Key, if the body is the same."""
    if job.request_hash != digest:
        raise Problem(
            422,
            "Idempotency key reused",
            "this Idempotency-Key was used with a different request body",
            kind="idempotency-mismatch",
            errors=[{"field": "Idempotency-Key", "message": "reused with another body"}],
        )
    return _render(job, 200, {"Idempotent-Replayed": "true"})


@bp.post("")
def create_job() -> Response:
    """Submit a job: 202 with the job, or the finished job under ``Prefer: wait=N``."""
    who = caller()
    body = json_body()
    svc = services()
    try:
        spec, resolved, seed = parse_job(body, svc.registry, svc.settings.webhook_allowed)
    except FieldErrors as exc:
        raise invalid(exc.errors) from None
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise invalid([{"field": "Idempotency-Key", "message": "must be 1-255 characters"}])
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    session = db()
    if key is not None and "image" in resolved:
        # A replay must not upload its input image again (the insert would then be refused).
        earlier = jobs.by_idempotency_key(session, who.owner, key)
        if earlier is not None:
            return _replayed(earlier, digest)
    job_id = jobs.new_job_id()
    try:
        attach_input_image(
            resolved, owner=who.owner, job_id=job_id, store=svc.store, session=session
        )
    except FieldErrors as exc:
        raise invalid(exc.errors) from None
    job, created = jobs.create_job(
        session,
        job_id=job_id,
        **job_fields(who.owner, spec, resolved, seed),
        idempotency_key=key,
        request_hash=digest,
        **webhook_fields(body),
    )
    if not created:
        return _replayed(job, digest)
    wait = _wait_seconds()
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if wait <= 0:
        publish(job.id, job.queue)
        return _render(job, 202, headers, new=True)
    headers["Preference-Applied"] = f"wait={wait:g}"
    # Subscribe before publishing, so even an instant job's notification is heard.
    with svc.notifier.listening(job.id) as finished:
        publish(job.id, job.queue)
        finished(wait)
    job = jobs.get_job(session, job.id) or job
    return _render(job, 200 if job.status in TERMINAL else 202, headers)


@bp.get("/<job_id>")
def get_job(job_id: str) -> Response:
    """Read one job: status, progress, metrics and artifact URLs."""
    job = jobs.get_job(db(), job_id, caller().owner)
    if job is None:
        raise not_found(f"job {job_id}")
    return _render(job)


@bp.post("/<job_id>/cancel")
def cancel_job(job_id: str) -> Response:
    """Cancel: a queued job at once, a running one at its next denoising step."""
    session = db()
    job = jobs.request_cancel(session, job_id, caller().owner)
    if job is None:
        raise not_found(f"job {job_id}")
    if job.status == jobs.CANCELED:
        services().notifier.job_finished(job.id, job.status)
        if job.webhook_url:
            kick_webhooks(services().celery)
    if job.status in (jobs.SUCCEEDED, jobs.FAILED):
        raise Problem(409, "Conflict", f"job {job_id} already {job.status}", kind="conflict")
    return _render(job, 202)


def _cursor(job: Job) -> str:
    raw = f"{as_utc(job.created_at).isoformat()}|{job.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid([{"field": "cursor", "message": "is not a cursor from this API"}]) from None


def _parse_time(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid([{"field": name, "message": "must be an ISO 8601 timestamp"}]) from None
    if value.tzinfo is None:
        raise invalid([{"field": name, "message": "must include a timezone (e.g. Z)"}])
    return value


@bp.get("")
def list_jobs() -> Response:
    """List the caller's jobs, newest first, filtered, with cursor pagination."""
    who, svc = caller(), services()
    errors = []
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        errors.append({"field": "status", "message": f"must be one of {list(STATUSES)}"})
    limit_raw = request.args.get("limit", "20")
    limit = int(limit_raw) if limit_raw.isascii() and limit_raw.isdigit() else 0
    if not 1 <= limit <= svc.settings.page_size_max:
        errors.append({"field": "limit", "message": f"must be 1-{svc.settings.page_size_max}"})
    if errors:
        raise invalid(errors)
    cursor = request.args.get("cursor")
    found = jobs.list_jobs(
        db(),
        who.owner,
        limit=limit + 1,
        status=status,
        model=request.args.get("model"),
        created_after=_parse_time("created_after"),
        created_before=_parse_time("created_before"),
        after=_parse_cursor(cursor) if cursor else None,
    )
    page, more = found[:limit], len(found) > limit
    session = db()
    data = [
        job_json(job, jobs.artifacts_of(session, job.id), svc.store, svc.settings) for job in page
    ]
    return jsonify({"data": data, "next_cursor": _cursor(page[-1]) if more else None})
