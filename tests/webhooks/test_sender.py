"""Deliveries against a real loopback receiver: statuses, redirects, timeouts, pinning, TLS."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from standardwebhooks.webhooks import Webhook

from genq.webhooks import signing
from genq.webhooks.sender import Outcome, parse_retry_after, send
from genq.webhooks.ssrf import Target, check_url

if TYPE_CHECKING:  # the class comes through the fixtures; this is for annotations only
    from conftest import Receiver

BODY = json.dumps({"type": "job.succeeded", "data": {"id": "job_1"}}).encode()
HEADERS = {"content-type": "application/json"}


def _target(receiver: Receiver, path: str = "/hook", host: str = "127.0.0.1") -> Target:
    return Target(
        scheme=receiver.scheme,
        host=host,
        port=receiver.port,
        path_with_query=path,
        addresses=["127.0.0.1"],
    )


def test_200_is_ok(receiver: Receiver) -> None:
    receiver.script(receiver.Reply(200, body=b'{"received": true}'))
    outcome = send(_target(receiver), BODY, HEADERS)
    assert outcome.ok and not outcome.gone
    assert outcome.status_code == 200
    assert outcome.error is None
    assert outcome.response_excerpt == '{"received": true}'
    assert outcome.retry_after_s is None
    assert 0 < outcome.latency_ms < 5000
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook", BODY)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-length"] == str(len(BODY))
    assert request.headers["user-agent"].startswith("genq-webhooks")


@pytest.mark.parametrize("status", [201, 202, 204, 299])
def test_any_2xx_is_ok(receiver: Receiver, status: int) -> None:
    receiver.script(receiver.Reply(status, body=b""))
    assert send(_target(receiver), BODY, HEADERS).ok


@pytest.mark.parametrize("status", [301, 307, 400, 401, 404, 429, 500, 502, 503])
def test_other_statuses_are_failures(receiver: Receiver, status: int) -> None:
    receiver.script(status)
    outcome = send(_target(receiver), BODY, HEADERS)
    assert (outcome.status_code, outcome.ok, outcome.gone, outcome.error) == (
        status,
        False,
        False,
        None,
    )


def test_redirect_is_a_failure_and_is_not_followed(receiver: Receiver) -> None:
    receiver.script(receiver.Reply(302, headers={"Location": f"{receiver.url}/elsewhere"}))
    outcome = send(_target(receiver), BODY, HEADERS)
    assert outcome.status_code == 302
    assert not outcome.ok
    assert len(receiver.requests) == 1
    assert receiver.requests[0].path == "/hook"


def test_410_is_gone(receiver: Receiver) -> None:
    receiver.script(410)
    outcome = send(_target(receiver), BODY, HEADERS)
    assert outcome.gone and not outcome.ok and outcome.status_code == 410


def test_retry_after_seconds(receiver: Receiver) -> None:
    receiver.script(receiver.Reply(429, headers={"Retry-After": "120"}))
    assert send(_target(receiver), BODY, HEADERS).retry_after_s == 120


def test_retry_after_http_date(receiver: Receiver) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
    receiver.script(
        receiver.Reply(503, headers={"Retry-After": email.utils.format_datetime(later, True)})
    )
    retry_after = send(_target(receiver), BODY, HEADERS).retry_after_s
    assert retry_after is not None and 85 <= retry_after <= 90


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        (" 30 ", 30.0),
        ("1.5", 1.5),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),
        ("Wed, 21 Oct 2015 07:30:00", 120.0),  # no zone: read as UTC
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC)
    assert parse_retry_after(value, now=now) == seconds


def test_response_excerpt_is_capped(receiver: Receiver) -> None:
    receiver.script(receiver.Reply(500, body="é".encode() * 5000))
    outcome = send(_target(receiver), BODY, HEADERS)
    assert outcome.response_excerpt == "é" * 1000


def test_timeout_gives_an_error_not_a_status(receiver: Receiver) -> None:
    receiver.script(receiver.Reply(200, delay_s=5))
    started = time.monotonic()
    outcome = send(_target(receiver), BODY, HEADERS, timeout_s=0.2)
    assert time.monotonic() - started < 2
    assert outcome.status_code is None
    assert not outcome.ok
    assert outcome.error is not None and "timed out" in outcome.error
    assert len(receiver.requests) == 1


def test_the_timeout_bounds_a_receiver_that_trickles(trickler: int) -> None:
    target = Target("http", "127.0.0.1", trickler, "/", ["127.0.0.1"])
    outcome = send(target, BODY, HEADERS, timeout_s=0.3)
    assert outcome.status_code is None
    assert outcome.error is not None and "timed out" in outcome.error
    assert outcome.latency_ms < 1500


def test_connection_refused_gives_an_error(closed_port: int) -> None:
    target = Target("http", "127.0.0.1", closed_port, "/", ["127.0.0.1"])
    outcome = send(target, BODY, HEADERS, timeout_s=2)
    assert outcome.status_code is None
    assert not outcome.ok and not outcome.gone
    assert outcome.error is not None and "refused" in outcome.error.lower()


def test_no_address_gives_an_error() -> None:
    outcome = send(Target("http", "example.invalid", 80, "/", []), BODY, HEADERS)
    assert outcome.status_code is None and outcome.error


def test_the_checked_address_is_used_not_the_name(receiver: Receiver) -> None:
    target = _target(receiver, path="/hook?x=1", host="example.invalid")
    outcome = send(target, BODY, HEADERS)
    assert outcome.ok
    [request] = receiver.requests
    assert request.headers["host"] == f"example.invalid:{receiver.port}"
    assert request.path == "/hook?x=1"


def test_signed_delivery_verifies_at_the_receiver(receiver: Receiver) -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], signing.new_message_id(), int(time.time()), BODY)
    assert send(_target(receiver), BODY, headers).ok
    [request] = receiver.requests
    assert Webhook(secret).verify(request.body, request.headers) == json.loads(BODY)
    assert signing.verify(secret, request.headers, request.body)


def test_checked_url_round_trip(receiver: Receiver) -> None:
    target = check_url(f"{receiver.url}/a/b?c=d", allow_hosts=frozenset({"127.0.0.1"}))
    assert send(target, BODY, HEADERS).ok
    assert receiver.requests[0].path == "/a/b?c=d"


def test_https_checks_the_certificate_against_the_url_host(
    receiver_factory: Callable[..., Receiver], tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = tls
    receiver = receiver_factory(tls=server_context)
    outcome = send(
        _target(receiver, host="hooks.example.invalid"), BODY, HEADERS, context=client_context
    )
    assert outcome.ok, outcome.error
    assert receiver.requests[0].headers["host"] == f"hooks.example.invalid:{receiver.port}"

    wrong = send(_target(receiver, host="other.invalid"), BODY, HEADERS, context=client_context)
    assert wrong.status_code is None
    assert wrong.error is not None and "certificate" in wrong.error.lower()


def test_https_to_a_plain_http_receiver_is_an_error(receiver: Receiver) -> None:
    target = Target("https", "127.0.0.1", receiver.port, "/", ["127.0.0.1"])
    outcome = send(target, BODY, HEADERS, timeout_s=2)
    assert outcome.status_code is None and outcome.error


def test_outcome_fields() -> None:
    assert list(Outcome.__dataclass_fields__) == [
        "status_code",
        "latency_ms",
        "error",
        "response_excerpt",
        "retry_after_s",
        "ok",
        "gone",
    ]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def trickler() -> Iterator[int]:
    """A server that starts an answer, then sends one byte every 50 ms and never finishes."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not stop.wait(0.05):
                    conn.sendall(b"a")
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for hooks.example.invalid: (server, client) contexts."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example.invalid")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("hooks.example.invalid")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client
