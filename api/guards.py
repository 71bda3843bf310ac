"""Refuse NUL characters before they reach the database.

Postgres stores no ``\\x00`` in text or jsonb; without this check such input would be a
500. It is a 422 naming where the character was.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from api.errors import invalid

CHECKED_HEADERS = ("Idempotency-Key", "Last-Event-ID")


def nul_path(value: Any, path: str) -> str | None:
    """Where in a decoded JSON value a NUL character is, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = nul_path(key, path) or nul_path(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for n, item in enumerate(value):
            found = nul_path(item, f"{path}[{n}]")
            if found:
                return found
    return None


def refuse_nul(value: Any, path: str) -> None:
    found = nul_path(value, path)
    if found:
        raise invalid([{"field": found, "message": "must not contain NUL characters"}])


def register_guards(app: Flask) -> None:
    @app.before_request
    def _no_nul_in_url_or_headers() -> None:
        refuse_nul(request.path, "path")
        for name, value in request.args.items(multi=True):
            refuse_nul(name, "query")
            refuse_nul(value, name)
        for name in CHECKED_HEADERS:
            refuse_nul(request.headers.get(name), name)
