"""The job JSON every client sees (the contract in DESIGN.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from genq.settings import Settings
from storage.db import as_utc
from storage.models import Artifact, Job, JobEvent
from storage.objects import ObjectStore


def iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def job_urls(settings: Settings, job_id: str) -> dict[str, str]:
    base = f"{settings.public_url.rstrip('/')}/v1/jobs/{job_id}"
    return {"get": base, "cancel": f"{base}/cancel", "events": f"{base}/events"}


def artifact_json(artifact: Artifact, store: ObjectStore, ttl_s: int) -> dict[str, Any]:
    url, expires_at = store.url(artifact.key, ttl_s)
    return {
        "url": url,
        "expires_at": iso(expires_at),
        "sha256": artifact.sha256,
        "content_type": artifact.content_type,
        "size": artifact.size,
        "width": artifact.width,
        "height": artifact.height,
    }


def job_json(
    job: Job, artifacts: list[Artifact], store: ObjectStore, settings: Settings
) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "model": job.model,
        "status": job.status,
        "input": job.input,
        "output": job.output,
        "error": job.error,
        "progress": job.progress,
        "metrics": job.metrics,
        "artifacts": [artifact_json(a, store, settings.url_ttl_s) for a in artifacts],
        "seed": job.seed,
        "batch_id": job.batch_id,
        "webhook": job.webhook_url,
        "webhook_events_filter": job.webhook_events,
        "attempt": job.attempt,
        "cancel_requested": job.cancel_requested,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "urls": job_urls(settings, job.id),
    }


# Stored event types, and the names clients see in SSE streams and webhooks.
EVENT_TYPES = {
    "running": "job.started",
    "progress": "job.progress",
    "cancel_requested": "job.cancel_requested",
    "queued": "job.requeued",
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "canceled": "job.canceled",
}


def event_payload(
    event: JobEvent, job: Job, artifacts: list[Artifact], store: ObjectStore, settings: Settings
) -> dict[str, Any]:
    """The payload of one event, the same for SSE and webhooks: the job as of that event.

    The job JSON is read now, so status and progress are taken from the event itself; a
    progress event of a text job also carries the text decoded so far.
    """
    data = job_json(job, artifacts, store, settings)
    if "status" in event.data:
        data["status"] = event.data["status"]
    if event.type == "progress":
        data["status"] = "running"
        data["progress"] = {
            k: event.data[k] for k in ("step", "total_steps", "phase") if k in event.data
        }
    payload: dict[str, Any] = {
        "type": EVENT_TYPES.get(event.type, f"job.{event.type}"),
        "timestamp": iso(event.created_at),
        "event_id": event.id,
        "data": data,
    }
    if "text" in event.data:
        payload["text"] = event.data["text"]
    return payload
