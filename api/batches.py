"""``/v1/batches``: many jobs in one request, followed, collected and canceled together.

The body is JSON (``{"requests": [...], "metadata": {...}}``) or JSON Lines (one request a
line, ``Content-Type: application/jsonl``); each request is ``{"custom_id", "model",
"input"}``. Every line is validated before anything is queued: one bad line refuses the
batch, with each error naming its line (``requests[3].input.width``). Results come back as
JSON Lines keyed by ``custom_id``, in submission order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from api.auth import caller
from api.errors import Problem, invalid, not_found
from api.guards import refuse_nul
from api.input_images import check_input_image, store_input_image
from api.jobs import job_fields, publish
from api.schemas import FieldErrors, parse_job, webhook_fields
from api.services import Services, db, services
from storage import batches, jobs
from storage.db import utcnow
from storage.models import Batch
from storage.serialize import artifact_json, iso

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")

# Fields a batch may set once for all its requests (a request's own value wins).
BATCH_DEFAULTS = ("webhook", "webhook_events_filter")
JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/json-lines")
MAX_REQUESTS = 1000


def _requests_from_body() -> tuple[list[tuple[int, Any]], dict[str, Any] | None, dict[str, Any]]:
    """The requests, the metadata, and batch-wide defaults (``webhook``, its filter)."""
    if request.mimetype in JSONL_TYPES:
        lines, errors = [], []
        for n, line in enumerate(request.get_data(as_text=True).splitlines()):
            if not line.strip():
                continue
            try:
                lines.append((n, json.loads(line)))  # numbered as the client counts lines
            except ValueError:
                errors.append({"field": f"requests[{n}]", "message": "is not valid JSON"})
        if errors:
            raise invalid(errors)
        return lines, None, {}
    from api.jobs import json_body

    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise invalid([{"field": "requests", "message": "must be a list of job requests"}])
    unknown = [k for k in body if k not in ("requests", "metadata", *BATCH_DEFAULTS)]
    if unknown:
        raise invalid([{"field": k, "message": "is not a known field"} for k in unknown])
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid([{"field": "metadata", "message": "must be an object"}])
    defaults = {k: body[k] for k in BATCH_DEFAULTS if k in body}
    return list(enumerate(body["requests"])), metadata, defaults


def batch_json(session, batch: Batch) -> dict[str, Any]:
    by_status, last = batches.counts(session, batch.id)
    state = batches.status(batch, by_status)
    base = f"{services().settings.public_url.rstrip('/')}/v1/batches/{batch.id}"
    return {
        "id": batch.id,
        "status": state,
        "request_counts": {"total": batch.total, **by_status},
        "metadata": batch.metadata_,
        "created_at": iso(batch.created_at),
        "completed_at": iso(last) if state in ("completed", "canceled") else None,
        "urls": {"get": base, "results": f"{base}/results", "cancel": f"{base}/cancel"},
    }


@bp.post("")
def create_batch() -> Response:
    """Submit a batch of jobs: all validated first, then queued together (202)."""
    who, svc = caller(), services()
    items, metadata, defaults = _requests_from_body()
    if not 1 <= len(items) <= MAX_REQUESTS:
        raise invalid([{"field": "requests", "message": f"must hold 1-{MAX_REQUESTS} requests"}])
    session, batch_id, now = db(), jobs.new_job_id(), utcnow()
    rows, errors, seen = [], [], set()
    images: dict[str, bytes | str | None] = {}
    for n, item in items:
        prefix = f"requests[{n}]"
        refuse_nul(item, prefix)
        if not isinstance(item, dict):
            errors.append({"field": prefix, "message": "must be an object"})
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 255:
            errors.append({"field": f"{prefix}.custom_id", "message": "is required (1-255 chars)"})
        elif custom_id in seen:
            errors.append({"field": f"{prefix}.custom_id", "message": "repeats an earlier one"})
        seen.add(custom_id)
        job_body = {**defaults, **{k: v for k, v in item.items() if k != "custom_id"}}
        try:
            spec, resolved, seed = parse_job(job_body, svc.registry, svc.settings.webhook_allowed)
            job_id = jobs.new_job_id()
            images[job_id] = check_input_image(
                resolved, owner=who.owner, store=svc.store, session=session
            )
        except FieldErrors as exc:
            errors += [{**e, "field": f"{prefix}.{e['field']}"} for e in exc.errors]
            continue
        rows.append(
            jobs.job_values(
                job_id=job_id,
                **job_fields(who.owner, spec, resolved, seed),
                batch_id=batch_id,
                custom_id=custom_id,
                **webhook_fields(job_body),
                # Microseconds apart, so listing by creation keeps submission order.
                now=now + timedelta(microseconds=n),
            )
        )
    if errors:
        raise invalid(errors)
    for row in rows:  # only now that every line is valid: nothing is stored for a refusal
        store_input_image(
            row["input"], images[row["id"]], owner=who.owner, job_id=row["id"], store=svc.store
        )
    batch = batches.create_batch(session, who.owner, batch_id, rows, metadata)
    for row in rows:
        publish(row["id"], row["queue"])
    response = jsonify(batch_json(session, batch))
    response.status_code = 202
    return response


def _owned(batch_id: str) -> Batch:
    batch = batches.get_batch(db(), batch_id, caller().owner)
    if batch is None:
        raise not_found(f"batch {batch_id}")
    return batch


@bp.get("/<batch_id>")
def get_batch(batch_id: str) -> Response:
    """The batch's status and per-status request counts."""
    return jsonify(batch_json(db(), _owned(batch_id)))


def _results(svc: Services, batch_id: str) -> Iterator[str]:
    with svc.sessions() as session:
        finished = batches.batch_jobs(session, batch_id, finished_only=True)
        for job in finished:
            artifacts = [
                artifact_json(a, svc.store, svc.settings.url_ttl_s)
                for a in jobs.artifacts_of(session, job.id)
            ]
            yield (
                json.dumps(
                    {
                        "custom_id": job.custom_id,
                        "job_id": job.id,
                        "status": job.status,
                        "output": job.output,
                        "error": job.error,
                        "artifacts": artifacts,
                    }
                )
                + "\n"
            )


@bp.get("/<batch_id>/results")
def get_results(batch_id: str) -> Response:
    """One JSON line per finished request, in submission order."""
    _owned(batch_id)
    return Response(_results(services(), batch_id), mimetype="application/jsonl")


@bp.post("/<batch_id>/cancel")
def cancel_batch(batch_id: str) -> Response:
    """Cancel the batch: queued jobs at once, running ones at their next step."""
    batch, session = _owned(batch_id), db()
    if batch_json(session, batch)["status"] == "completed":
        raise Problem(409, "Conflict", f"batch {batch_id} already completed", kind="conflict")
    batches.cancel_batch(session, batch)
    response = jsonify(batch_json(session, batches.get_batch(session, batch_id, batch.owner)))
    response.status_code = 202
    return response
