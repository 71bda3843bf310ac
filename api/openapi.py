"""``/openapi.json``: the API described for clients and code generators.

A test checks that every route the app serves is described here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.schemas import JobCreate
from genq import __version__

bp = Blueprint("openapi", __name__)

PROBLEM = {"$ref": "#/components/responses/Problem"}
JOB = {
    "description": "The job",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def spec() -> dict[str, Any]:
    job_create = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = job_create.pop("$defs", {})
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
