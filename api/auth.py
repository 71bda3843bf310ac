"""Bearer API keys. Every job query is scoped to the caller's owner, so another owner's
job or artifact is indistinguishable from one that does not exist (404).

Lookups are cached per process for a few seconds: a submit then costs no key query, and a
revoked key stops working within ``KEY_CACHE_S``.
"""

from __future__ import annotations

import time

from flask import g, request

from api.errors import Problem
from api.services import db
from storage.keys import Caller, authenticate, hash_key

KEY_CACHE_S = 10.0
_cache: dict[str, tuple[float, Caller]] = {}


def caller() -> Caller:
    cached = g.get("caller")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            401,
            "Unauthorized",
            "send 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = hash_key(token)
    hit = _cache.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        found: Caller | None = hit[1]
    else:
        found = authenticate(db(), token)
        if found is not None:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[digest] = (time.monotonic() + KEY_CACHE_S, found)
    if found is None:
        raise Problem(
            401,
            "Unauthorized",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    g.caller = found
    return found
