"""Errors as RFC 9457 problem details: ``type, title, status, detail`` and ``errors[]``.

Every refusal names what was wrong (``errors[].field``) so a client can fix its request
without reading server logs.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

PROBLEM_BASE = "https://genq.dev/problems/"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        kind: str = "",
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors = errors or []
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        response = jsonify(body)
        response.status_code = self.status
        response.content_type = "application/problem+json"
        response.headers.update(self.headers)
        return response


def invalid(errors: list[dict[str, str]], detail: str = "") -> Problem:
    detail = detail or "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(422, "Invalid request", detail, kind="validation", errors=errors)


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"{what} does not exist", kind="not-found")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, lambda p: p.response())

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return Problem(exc.code or 500, exc.name, exc.description or "").response()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error")
        return Problem(500, "Internal server error", "see the server log").response()
