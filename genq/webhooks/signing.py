"""Standard Webhooks signatures (https://www.standardwebhooks.com).

Receivers verify with any Standard Webhooks library, so the format here is exactly the spec's:
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed by the bytes
of a ``whsec_<base64>`` secret. While a secret is being rotated, one signature per active
secret is sent, so receivers holding either the old or the new secret accept the message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from secrets import token_bytes, token_urlsafe

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, the spec's ``whsec_`` form."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode("ascii")


def new_message_id() -> str:
    """A unique ``webhook-id``; receivers use it to drop a redelivered message."""
    return "msg_" + token_urlsafe(18)


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret; ValueError when it is not one."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not base64 (expected whsec_<base64>)") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``{msg_id}.{timestamp}.{body}``."""
    digest = _digest(secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per active secret (overlap during rotation)."""
    if isinstance(secrets, str):  # a lone string would be signed with once per character
        raise TypeError("pass a list of webhook secrets, not a single string")
    signatures = [sign(s, msg_id, timestamp, body) for s in secrets]
    if not signatures:
        raise ValueError("at least one webhook secret is needed to sign")
    return " ".join(signatures)


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a signed delivery carries."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """Whether any ``v1`` signature matches and the timestamp is within ``tolerance_s``.

    The timestamp window stops a captured message from being replayed later; comparisons are
    constant-time so a forger learns nothing from how long a refusal takes.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_ts = lowered.get("webhook-timestamp")
    raw_sigs = lowered.get("webhook-signature")
    if not (msg_id and raw_ts and raw_sigs):
        return False
    try:
        timestamp = int(raw_ts.strip())
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret_key(secret), msg_id, timestamp, body)
    matched = False
    for candidate in raw_sigs.split():
        version, _, encoded = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(expected, given)
    return matched


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    content = f"{msg_id}.{int(timestamp)}.".encode() + body
    return hmac.new(key, content, hashlib.sha256).digest()
