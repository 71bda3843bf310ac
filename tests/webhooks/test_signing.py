"""Signatures must verify with an independent Standard Webhooks implementation."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from genq.webhooks import signing

BODY = json.dumps({"type": "job.succeeded", "data": {"id": "job_1"}}).encode()


def _fresh(secrets: list[str], body: bytes = BODY) -> dict[str, str]:
    return signing.headers(secrets, signing.new_message_id(), int(time.time()), body)


def test_new_secret_is_whsec_with_32_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.new_secret() != secret


def test_new_message_id_is_unique_and_prefixed() -> None:
    ids = {signing.new_message_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("msg_") and len(i) > 20 for i in ids)


def test_sign_matches_the_reference_library() -> None:
    secret = signing.new_secret()
    ts = 1_700_000_000
    expected = Webhook(secret).sign("msg_1", datetime.fromtimestamp(ts, UTC), BODY.decode())
    assert signing.sign(secret, "msg_1", ts, BODY) == expected


def test_headers_verify_with_the_reference_library() -> None:
    secret = signing.new_secret()
    headers = _fresh([secret])
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    assert signing.verify(secret, headers, BODY)


def test_reference_library_signatures_verify_here() -> None:
    secret = signing.new_secret()
    ts = int(time.time())
    sig = Webhook(secret).sign("msg_x", datetime.fromtimestamp(ts, UTC), BODY.decode())
    headers = {"Webhook-Id": "msg_x", "Webhook-Timestamp": str(ts), "Webhook-Signature": sig}
    assert signing.verify(secret, headers, BODY)


def test_rotation_sends_one_signature_per_secret_and_each_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    headers = _fresh([old, new])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)
        assert signing.verify(secret, headers, BODY)
    stranger = signing.new_secret()
    assert not signing.verify(stranger, headers, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)


def test_wrong_secret_fails() -> None:
    headers = _fresh([signing.new_secret()])
    other = signing.new_secret()
    assert not signing.verify(other, headers, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(BODY, headers)


def test_tampered_body_fails() -> None:
    secret = signing.new_secret()
    headers = _fresh([secret])
    tampered = BODY.replace(b"job_1", b"job_2")
    assert not signing.verify(secret, headers, tampered)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp"])
def test_tampered_id_or_timestamp_fails(name: str) -> None:
    secret = signing.new_secret()
    headers = _fresh([secret])
    headers[name] = str(int(time.time()) - 1) if name == "webhook-timestamp" else "msg_other"
    assert not signing.verify(secret, headers, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize(
    ("age_s", "ok"), [(0, True), (299, True), (-299, True), (301, False), (-301, False)]
)
def test_timestamp_tolerance(age_s: int, ok: bool) -> None:
    secret = signing.new_secret()
    now = 1_700_000_000
    headers = signing.headers([secret], "msg_1", now - age_s, BODY)
    assert signing.verify(secret, headers, BODY, now=now) is ok


def test_custom_tolerance() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", 1000, BODY)
    assert not signing.verify(secret, headers, BODY, tolerance_s=10, now=1011)
    assert signing.verify(secret, headers, BODY, tolerance_s=10, now=1010)


@pytest.mark.parametrize(
    "signature",
    ["", "v1,not-base64!!", "v1", "garbage", "v2,{good}", "v1a,{good}"],
)
def test_malformed_or_foreign_signatures_fail(signature: str) -> None:
    secret = signing.new_secret()
    good = signing.sign(secret, "msg_1", 1000, BODY).split(",", 1)[1]
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1000",
        "webhook-signature": signature.format(good=good),
    }
    assert not signing.verify(secret, headers, BODY, now=1000)


def test_a_good_signature_among_bad_ones_verifies() -> None:
    secret = signing.new_secret()
    good = signing.sign(secret, "msg_1", 1000, BODY)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1000",
        "webhook-signature": f"v1,AAAA v2,xyz {good} garbage",
    }
    assert signing.verify(secret, headers, BODY, now=1000)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_fails(missing: str) -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", 1000, BODY)
    del headers[missing]
    assert not signing.verify(secret, headers, BODY, now=1000)


def test_non_numeric_timestamp_fails() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", 1000, BODY)
    headers["webhook-timestamp"] = "1000.5x"
    assert not signing.verify(secret, headers, BODY, now=1000)


def test_secret_without_prefix_is_the_same_key() -> None:
    secret = signing.new_secret()
    bare = secret.removeprefix("whsec_")
    assert signing.sign(bare, "m", 1, b"x") == signing.sign(secret, "m", 1, b"x")


@pytest.mark.parametrize("secret", ["whsec_", "whsec_***", ""])
def test_bad_secret_is_a_value_error(secret: str) -> None:
    with pytest.raises(ValueError):
        signing.sign(secret, "m", 1, b"x")


def test_signing_needs_a_list_of_secrets() -> None:
    with pytest.raises(ValueError):
        signing.signature_header([], "m", 1, b"x")
    with pytest.raises(TypeError):
        signing.signature_header(signing.new_secret(), "m", 1, b"x")  # type: ignore[arg-type]
