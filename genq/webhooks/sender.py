"""POST one webhook delivery to a checked target and report what happened.

The socket goes to the address ``ssrf.check_url`` vetted, never to a fresh lookup of the
name, so DNS cannot be swapped between check and connect. Redirects are not followed: a 3xx
is a failed attempt, otherwise a receiver could bounce the worker to an internal address.
Every failure comes back as an ``Outcome`` (never an exception) so the caller only decides
between retry, give up and success.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import math
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from genq.webhooks.ssrf import Target

EXCERPT_CHARS = 1000
# Enough bytes for EXCERPT_CHARS of UTF-8; the rest of a response body is never read.
_READ_BYTES = EXCERPT_CHARS * 4
USER_AGENT = "genq-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, as the retry logic and the delivery log need it."""

    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str
    retry_after_s: float | None
    ok: bool
    gone: bool


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a fixed address while the Host header keeps the URL's name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address; the certificate is still checked against the URL's name."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address
        self.tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self.tls_context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


def send(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float = 15.0,
    *,
    context: ssl.SSLContext | None = None,
) -> Outcome:
    """POST ``body`` to ``target``; ``timeout_s`` bounds the whole attempt, not each read.

    A receiver that trickles its answer a byte at a time is cut off at the deadline, so one
    slow endpoint cannot hold a delivery worker for longer than ``timeout_s``.
    """
    started = time.monotonic()
    if not target.addresses:
        return _failed(started, "target has no checked address")
    conn = _connection(target, timeout_s, context)
    expired = threading.Event()
    watchdog = threading.Timer(timeout_s, _cut_off, args=(conn, expired))
    watchdog.daemon = True
    response: http.client.HTTPResponse | None = None
    try:
        watchdog.start()
        conn.request("POST", target.path_with_query, body=body, headers=_with_defaults(headers))
        response = conn.getresponse()
        if expired.is_set():  # cut off mid-headers: http.client may read that as their end
            raise TimeoutError
        status = response.status
        retry_after = parse_retry_after(response.getheader("Retry-After"))
        excerpt = _excerpt(response)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            return _failed(started, f"timed out after {timeout_s:g}s")
        detail = str(exc)
        return _failed(started, f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)
    finally:
        watchdog.cancel()
        if response is not None:
            response.close()
        conn.close()
    return Outcome(
        status_code=status,
        latency_ms=_elapsed_ms(started),
        error=None,
        response_excerpt=excerpt,
        retry_after_s=retry_after,
        ok=200 <= status < 300,
        gone=status == 410,
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = datetime.now(UTC) if now is None else now
    return max(0.0, (when - now).total_seconds())


def _connection(
    target: Target, timeout_s: float, context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    address = target.addresses[0]
    if target.scheme == "https":
        context = context or ssl.create_default_context()
        return _PinnedHTTPSConnection(target.host, target.port, address, timeout_s, context)
    return _PinnedHTTPConnection(target.host, target.port, address, timeout_s)


def _excerpt(response: http.client.HTTPResponse) -> str:
    """The start of the body; the status already counts, so a failed read only loses text."""
    try:
        raw = response.read(_READ_BYTES)
    except http.client.IncompleteRead as exc:
        raw = exc.partial
    except (OSError, http.client.HTTPException, ValueError):
        raw = b""
    return raw.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _cut_off(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """Wake a blocked read at the deadline by shutting the socket underneath it."""
    expired.set()
    sock = conn.sock
    if sock is None:
        return
    # The plain socket method: SSLSocket.shutdown would tear down TLS state mid-read.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _with_defaults(headers: dict[str, str]) -> dict[str, str]:
    merged = {"User-Agent": USER_AGENT, "Connection": "close"}
    lowered = {k.lower() for k in headers}
    merged = {k: v for k, v in merged.items() if k.lower() not in lowered}
    merged.update(headers)
    return merged


def _failed(started: float, error: str) -> Outcome:
    return Outcome(
        status_code=None,
        latency_ms=_elapsed_ms(started),
        error=error,
        response_excerpt="",
        retry_after_s=None,
        ok=False,
        gone=False,
    )


def _elapsed_ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
