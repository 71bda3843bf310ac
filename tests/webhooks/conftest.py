"""A real HTTP receiver on loopback, for testing webhook delivery end to end.

``Receiver`` records every request it gets and answers from a script of replies, so a test
can make the far end succeed, fail, redirect, stall or rate-limit, then check exactly what
arrived. Use the ``receiver`` fixture, or ``receiver_factory`` for more than one (or TLS).
"""

from __future__ import annotations

import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``delay_s`` stalls before answering (to provoke timeouts)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A threaded ``http.server`` on 127.0.0.1 (random port) answering from a script.

    Once the script runs out every request gets ``Reply()`` (200 "ok").
    """

    Reply = Reply
    host = "127.0.0.1"

    def __init__(self, replies: Iterable[Reply | int] = (), tls: ssl.SSLContext | None = None):
        self.requests: list[Received] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _Server((self.host, 0), _Handler)
        self._server.receiver = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.script(*replies)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def script(self, *replies: Reply | int) -> Receiver:
        """Queue answers for the next requests; a bare int is a status with body "ok"."""
        with self._lock:
            self._replies.extend(Reply(r) if isinstance(r, int) else r for r in replies)
        return self

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled replies are abandoned and handler threads joined."""
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._replies.popleft() if self._replies else Reply()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() waits for every handler
    block_on_close = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The client may have given up (timeout tests); that is not a test failure."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        receiver = self.server.receiver
        reply = receiver._take(
            Received(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
        )
        self.close_connection = True
        if reply.delay_s and receiver.stopping.wait(reply.delay_s):
            return  # the test is over; answer nobody
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_PUT = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    """Start receivers (``replies=``, ``tls=``); all are stopped after the test."""
    started: list[Receiver] = []

    def make(replies: Iterable[Reply | int] = (), tls: ssl.SSLContext | None = None) -> Receiver:
        receiver = Receiver(replies, tls=tls).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receiver_factory: Callable[..., Receiver]) -> Receiver:
    return receiver_factory()
