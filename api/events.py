"""``/v1/jobs/{id}/events``: a job's stored events as Server-Sent Events.

Event ids are the stored events' ids, so a client that reconnects with ``Last-Event-ID``
gets exactly what it missed. The stream ends after the job's final event. Payloads are the
ones webhooks carry (:func:`storage.serialize.event_payload`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import Blueprint, Response, request

from api.auth import caller
from api.errors import invalid, not_found
from api.services import Services, db, services
from storage import jobs
from storage.models import TERMINAL, Job, JobEvent
from storage.serialize import event_payload

bp = Blueprint("events", __name__)

POLL_S = 0.1
KEEPALIVE_S = 15.0
STREAM_MAX_S = 300.0


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or "0"
    if not (raw.isascii() and raw.isdigit() and int(raw) < 2**63):
        raise invalid([{"field": "Last-Event-ID", "message": "must be an event id"}])
    return int(raw)


def sse(event_id: int, event: str, data: dict) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


def follow(
    svc: Services, job_id: str, after: int, max_s: float | None = None
) -> Iterator[tuple[JobEvent, Job] | None]:
    """Yield (event, job) for each new event until the job's last one, and None as a
    keep-alive when nothing happened for a while. Its own session outlives the request's."""
    deadline = time.monotonic() + max_s if max_s else None
    with svc.sessions() as session:
        quiet_since = time.monotonic()
        while True:
            session.expire_all()
            job = jobs.get_job(session, job_id)
            # Status is read before events: a final status implies its event is visible.
            finished = job is None or job.status in TERMINAL
            events = jobs.events_of(session, job_id, after)
            for event in events:
                yield event, job
                after = event.id
                quiet_since = time.monotonic()
            session.rollback()  # end the snapshot, so the next poll sees new rows
            if finished or (deadline and time.monotonic() > deadline):
                return
            if time.monotonic() - quiet_since > KEEPALIVE_S:
                yield None
                quiet_since = time.monotonic()
            time.sleep(POLL_S)


def stream_job_events(svc: Services, job_id: str, after: int) -> Iterator[str]:
    yield "retry: 1000\n\n"
    artifacts = None  # read once, and again when the job finishes (they appear then)
    # Capped, so a few idle watchers cannot hold the API's threads forever; EventSource
    # reconnects by itself (retry: 1000) and resumes with Last-Event-ID.
    for item in follow(svc, job_id, after, STREAM_MAX_S):
        if item is None:
            yield ": keep-alive\n\n"
            continue
        event, job = item
        if artifacts is None or event.type in TERMINAL:
            with svc.sessions() as session:
                artifacts = jobs.artifacts_of(session, job_id)
        payload = event_payload(event, job, artifacts, svc.store, svc.settings)
        yield sse(event.id, payload["type"], payload)


@bp.get("/v1/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    """Stream the job's events as SSE, resuming after ``Last-Event-ID``."""
    if jobs.get_job(db(), job_id, caller().owner) is None:
        raise not_found(f"job {job_id}")
    after = _last_event_id()
    return Response(
        stream_job_events(services(), job_id, after),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
