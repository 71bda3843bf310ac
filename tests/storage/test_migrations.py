"""The Alembic revisions: up, down and up again on Postgres and SQLite, and the ORM models
describe exactly the schema they make."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect

import migrations
from genq import local_services as ls
from storage.models import Base

TABLES = {
    "jobs",
    "job_events",
    "artifacts",
    "api_keys",
    "webhook_secrets",
    "webhook_deliveries",
    "webhook_attempts",
    "webhook_disabled_endpoints",
    "batches",
}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def schema_diff(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    with ls.fresh_database(pg_server, f"genq_mig_{os.getpid()}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'genq.db'}"


@pytest.fixture(params=["postgres", "sqlite"])
def fresh_url(request) -> str:
    return request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")


def test_upgrade_downgrade_upgrade(fresh_url):
    assert tables(fresh_url) == set()
    migrations.upgrade(fresh_url)
    assert tables(fresh_url) == TABLES | {"alembic_version"}
    migrations.downgrade(fresh_url)
    assert tables(fresh_url) == {"alembic_version"}
    migrations.upgrade(fresh_url)
    assert tables(fresh_url) == TABLES | {"alembic_version"}
    migrations.upgrade(fresh_url)  # already at head: nothing to do, nothing breaks
    assert tables(fresh_url) == TABLES | {"alembic_version"}


def test_migrated_schema_is_usable(fresh_url):
    from storage import jobs
    from storage.db import session_factory
    from storage.keys import authenticate, create_key

    migrations.upgrade(fresh_url)
    with session_factory(fresh_url)() as session:
        token = create_key(session, "carol")
        assert authenticate(session, token).owner == "carol"
        job, created = jobs.create_job(
            session,
            owner="carol",
            kind="noop",
            model="noop",
            input={"a": [1, 2]},
            seed=2**40,
            queue="q",
            idempotency_key="k",
        )
        assert created
        again, created = jobs.create_job(
            session,
            owner="carol",
            kind="noop",
            model="noop",
            input={},
            seed=0,
            queue="q",
            idempotency_key="k",
        )
        assert not created and again.id == job.id  # the unique (owner, key) constraint
        session.expire_all()
        stored = jobs.get_job(session, job.id)
        assert stored.input == {"a": [1, 2]} and stored.seed == 2**40
        assert stored.status == "queued"
        # Cancelling writes the job row and its event in one transaction.
        assert jobs.request_cancel(session, job.id, "carol").status == "canceled"
        assert [e.type for e in jobs.events_of(session, job.id)][-1] == "canceled"


def test_orm_metadata_matches_the_migrated_postgres_schema(pg_url):
    migrations.upgrade(pg_url)
    assert schema_diff(pg_url) == []


def test_orm_metadata_matches_the_migrated_sqlite_schema(sqlite_url):
    migrations.upgrade(sqlite_url)
    assert schema_diff(sqlite_url) == []
