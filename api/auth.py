"""Bearer API keys. Every job query is scoped to the caller's owner, so another owner's
job or artifact is indistinguishable from one that does not exist (404)."""

from __future__ import annotations

from flask import g, request

from api.errors import Problem
from api.services import db
from storage.keys import Caller, authenticate


def caller() -> Caller:
    cached = g.get("caller")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "Unauthorized",
            "send 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = authenticate(db(), token.strip())
    if found is None:
        raise Problem(
            401,
            "Unauthorized",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    g.caller = found
    return found
