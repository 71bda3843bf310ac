"""API keys: random bearer tokens stored only as their SHA-256.

Tokens are 256-bit random, so a plain (unsalted) digest is as strong as a slow hash and lets
the API find a key with one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.db import utcnow
from storage.models import ApiKey

PREFIX = "gq_"


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    owner: str
    is_admin: bool
    key_id: str


def create_key(session: Session, owner: str, *, name: str = "", is_admin: bool = False) -> str:
    """Create a key and return its token: the only time the token is ever visible."""
    if not owner or len(owner) > 64 or "/" in owner:
        raise ValueError("owner must be 1-64 characters without '/'")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            id=str(uuid.uuid4()),
            owner=owner,
            name=name,
            prefix=token[:10],
            key_hash=hash_key(token),
            is_admin=is_admin,
            created_at=utcnow(),
        )
    )
    session.commit()
    return token


def authenticate(session: Session, token: str) -> Caller | None:
    row = session.execute(
        select(ApiKey.id, ApiKey.owner, ApiKey.is_admin).where(
            ApiKey.key_hash == hash_key(token), ApiKey.revoked_at.is_(None)
        )
    ).one_or_none()
    if row is None:
        return None
    return Caller(owner=row.owner, is_admin=row.is_admin, key_id=row.id)
