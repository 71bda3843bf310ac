"""The job JSON every client sees (the contract in DESIGN.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from genq.settings import Settings
from storage.db import as_utc
from storage.models import Artifact, Job
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
        "attempt": job.attempt,
        "cancel_requested": job.cancel_requested,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "urls": job_urls(settings, job.id),
    }
