"""``/openapi.json``: the API described for clients and code generators.

A test checks that every route the app serves is described here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.schemas import ImageInput, JobCreate, TextInput
from genq import __version__

bp = Blueprint("openapi", __name__)

PROBLEM = {"$ref": "#/components/responses/Problem"}
JOB = {
    "description": "The job",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
}
OPENAI_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["model"],
                "properties": {
                    "model": {"type": "string"},
                    "prompt": {"type": "string"},
                    "messages": {"type": "array"},
                    "max_tokens": {"type": "integer"},
                    "stream": {"type": "boolean"},
                    "temperature": {"type": "number"},
                    "seed": {"type": "integer"},
                    "block_length": {"type": "integer"},
                    "steps": {"type": "integer"},
                    "threshold": {"type": "number"},
                },
            }
        }
    },
}
BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def spec() -> dict[str, Any]:
    ref = "#/components/schemas/{model}"
    job_create = JobCreate.model_json_schema(ref_template=ref)
    job_create["properties"]["input"] = {
        "oneOf": [{"$ref": ref.format(model="ImageInput")}, {"$ref": ref.format(model="TextInput")}]
    }
    defs: dict[str, Any] = {}
    for model in (ImageInput, TextInput):
        schema = model.model_json_schema(ref_template=ref)
        defs.update(schema.pop("$defs", {}))  # nested models (ChatMessage) live beside it
        defs[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "genq", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "JobCreate": job_create,
                **defs,
                "Job": {
                    "type": "object",
                    "required": ["id", "kind", "model", "status", "urls"],
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"enum": ["image", "text", "noop"]},
                        "model": {"type": "string"},
                        "status": {
                            "enum": ["queued", "running", "succeeded", "failed", "canceled"]
                        },
                        "input": {"type": "object"},
                        "output": {"type": ["object", "null"]},
                        "error": {"type": ["object", "null"]},
                        "progress": {"type": ["object", "null"]},
                        "metrics": {"type": ["object", "null"]},
                        "artifacts": {"type": "array", "items": {"type": "object"}},
                        "seed": {"type": "integer"},
                        "urls": {"type": "object"},
                    },
                },
            },
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details; errors[] names each bad field",
                    "content": {"application/problem+json": {"schema": {"type": "object"}}},
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/jobs": {
                "post": _op(
                    "Submit a job",
                    {"202": JOB, "200": JOB, "401": PROBLEM, "413": PROBLEM, "422": PROBLEM},
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/JobCreate"}
                            }
                        },
                    },
                    parameters=[
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                        {
                            "name": "Prefer",
                            "in": "header",
                            "schema": {"type": "string"},
                            "description": "wait=N: wait up to N seconds for the job to finish",
                        },
                    ],
                ),
                "get": _op(
                    "List jobs, newest first",
                    {"200": {"description": "{data: [Job], next_cursor}"}, "422": PROBLEM},
                    parameters=[
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in (
                            "status",
                            "model",
                            "created_after",
                            "created_before",
                            "limit",
                            "cursor",
                        )
                    ],
                ),
            },
            "/v1/batches": {
                "post": _op(
                    "Submit a batch: JSON {requests, metadata} or JSON Lines of "
                    "{custom_id, model, input}; all validated before any is queued",
                    {"202": {"description": "the batch"}, "422": PROBLEM},
                )
            },
            "/v1/batches/{batch_id}": {
                "get": _op(
                    "A batch's status and request counts",
                    {"200": {"description": "the batch"}, "404": PROBLEM},
                    parameters=[BATCH_ID],
                )
            },
            "/v1/batches/{batch_id}/results": {
                "get": _op(
                    "Finished requests as JSON Lines (custom_id, job_id, status, "
                    "output, error, artifacts)",
                    {"200": {"description": "application/jsonl"}, "404": PROBLEM},
                    parameters=[BATCH_ID],
                )
            },
            "/v1/batches/{batch_id}/cancel": {
                "post": _op(
                    "Cancel every job of the batch",
                    {"202": {"description": "the batch"}, "404": PROBLEM, "409": PROBLEM},
                    parameters=[BATCH_ID],
                )
            },
            "/v1/jobs/{job_id}": {
                "get": _op("Read a job", {"200": JOB, "404": PROBLEM}, parameters=[JOB_ID])
            },
            "/v1/jobs/{job_id}/cancel": {
                "post": _op(
                    "Cancel a job",
                    {"202": JOB, "404": PROBLEM, "409": PROBLEM},
                    parameters=[JOB_ID],
                )
            },
            "/v1/jobs/{job_id}/events": {
                "get": _op(
                    "Stream the job's events as Server-Sent Events (resumable)",
                    {"200": {"description": "text/event-stream"}, "404": PROBLEM},
                    parameters=[
                        JOB_ID,
                        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                    ],
                )
            },
            "/v1/completions": {
                "post": _op(
                    "OpenAI-compatible completion as a text job (stream: true for SSE)",
                    {
                        "200": {"description": "text_completion, or SSE chunks"},
                        "422": PROBLEM,
                        "504": PROBLEM,
                    },
                    requestBody=OPENAI_BODY,
                )
            },
            "/v1/chat/completions": {
                "post": _op(
                    "OpenAI-compatible chat completion (models with a chat template)",
                    {
                        "200": {"description": "chat.completion, or SSE chunks"},
                        "422": PROBLEM,
                        "504": PROBLEM,
                    },
                    requestBody=OPENAI_BODY,
                )
            },
            "/v1/jobs/{job_id}/deliveries": {
                "get": _op(
                    "The job's webhook deliveries and their attempts",
                    {"200": {"description": "{data: [delivery]}"}, "404": PROBLEM},
                    parameters=[JOB_ID],
                )
            },
            "/v1/deliveries/{delivery_id}/redeliver": {
                "post": _op(
                    "Send a webhook delivery again (same webhook-id)",
                    {"202": {"description": "the delivery"}, "404": PROBLEM},
                    parameters=[
                        {
                            "name": "delivery_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
            "/v1/webhooks/secret": {
                "get": _op(
                    "The caller's webhook signing secrets",
                    {"200": {"description": "{data: [secret]}"}},
                )
            },
            "/v1/webhooks/secret/rotate": {
                "post": _op(
                    "Rotate the signing secret (the old one signs during the overlap)",
                    {"200": {"description": "{data: [secret]}"}},
                )
            },
            "/v1/files/{key}": {
                "get": _op(
                    "Download a local-store artifact through its signed URL",
                    {"200": {"description": "the file"}, "403": PROBLEM, "404": PROBLEM},
                    security=[],
                    parameters=[
                        {
                            "name": "key",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {"name": "expires", "in": "query", "schema": {"type": "integer"}},
                        {"name": "signature", "in": "query", "schema": {"type": "string"}},
                    ],
                )
            },
            "/v1/admin/summary": {
                "get": _op(
                    "Admin: counts, queues, latency, failures (admin keys only)",
                    {"200": {"description": "the summary"}, "403": PROBLEM},
                )
            },
            "/v1/admin/jobs": {
                "get": _op(
                    "Admin: every owner's jobs (admin keys only)",
                    {"200": {"description": "{data: [job]}"}, "403": PROBLEM},
                    parameters=[
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("owner", "status", "model", "limit")
                    ],
                )
            },
            "/admin/": {
                "get": _op(
                    "The admin dashboard (HTML)", {"200": {"description": "HTML"}}, security=[]
                )
            },
            "/healthz": {"get": _op("Liveness", {"200": {"description": "ok"}}, security=[])},
            "/readyz": {
                "get": _op(
                    "Readiness of database, broker and object store",
                    {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                    security=[],
                )
            },
            "/metrics": {
                "get": _op("Prometheus metrics", {"200": {"description": "text"}}, security=[])
            },
            "/openapi.json": {
                "get": _op("This document", {"200": {"description": "JSON"}}, security=[])
            },
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(spec())
