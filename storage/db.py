"""Engines and sessions, one engine per process and database URL.

Forked worker processes must not share a parent's connections: :func:`reset_engines`
drops them (called from Celery's ``worker_process_init``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, Engine] = {}
_sessions: dict[str, sessionmaker[Session]] = {}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything genq stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # The demo's API and worker share one SQLite file: WAL lets readers and one writer
    # proceed together, and busy_timeout waits out the writer instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def get_engine(url: str) -> Engine:
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # No pre-ping: it costs a round trip per checkout on the submit hot path. A
            # connection the server dropped fails one request and is then replaced.
            engine = create_engine(url, pool_size=5, max_overflow=10, pool_recycle=300)
        _engines[url] = engine
    return engine


def session_factory(url: str) -> sessionmaker[Session]:
    factory = _sessions.get(url)
    if factory is None:
        factory = sessionmaker(get_engine(url), expire_on_commit=False)
        _sessions[url] = factory
    return factory


def reset_engines() -> None:
    """Forget inherited connections after a fork (the parent keeps using its own)."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()
    _sessions.clear()
