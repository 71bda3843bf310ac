"""Fixtures for real parts: Postgres, Redis, an S3 endpoint, a tiny model and a live worker.

Services already running on this machine are used; otherwise they are started (see
``genq.local_services``). Each test run gets its own database and Redis DB number.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import migrations
from genq import local_services as ls
from genq.settings import Settings

SLOW_MODEL = "tiny-sd-slow"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("genq")


@pytest.fixture(scope="session")
def pg_server(workdir: Path) -> Iterator[str]:
    service = ls.ensure_postgres(workdir / "pg")
    yield service.url
    service.stop()


@pytest.fixture(scope="session")
def database_url(pg_server: str) -> Iterator[str]:
    with ls.fresh_database(pg_server, f"genq_test_{os.getpid()}") as url:
        migrations.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def broker_url(workdir: Path) -> Iterator[str]:
    import redis

    service = ls.ensure_redis(workdir / "redis")
    url = f"{service.url}/{os.getpid() % 15 + 1}"  # a DB number of its own per run
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()
    service.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    service = ls.start_s3()
    yield service.url
    service.stop()


@pytest.fixture(scope="session")
def models_file(workdir: Path) -> Path:
    from pipelines.tiny import TINY_CHAT_TEMPLATE, make_tiny, make_tiny_mlm, make_tiny_sd

    model = make_tiny_sd(workdir / "tiny-sd")
    sdxl = make_tiny(workdir / "tiny-sdxl", "sdxl")
    sd3 = make_tiny(workdir / "tiny-sd3", "sd3")
    mlm = make_tiny_mlm(workdir / "tiny-mlm")
    chat = make_tiny_mlm(workdir / "tiny-mlm-chat", chat_template=TINY_CHAT_TEMPLATE)
    path = workdir / "models.toml"
    path.write_text(
        f"""
[models.tiny-sd]
kind = "image"
family = "sd"
path = "{model}"
[models.tiny-sd.defaults]
width = 64
height = 64
num_inference_steps = 4
[models.tiny-sd.limits]
min_width = 32
min_height = 32
max_width = 128
max_height = 128
max_steps = 20
max_images = 3

# The same weights, allowed to run long enough to cancel mid-way.
[models.{SLOW_MODEL}]
kind = "image"
family = "sd"
path = "{model}"
[models.{SLOW_MODEL}.limits]
max_width = 256
max_height = 256
max_steps = 1000

[models.tiny-sdxl]
family = "sdxl"
path = "{sdxl}"
[models.tiny-sdxl.limits]
min_width = 64
min_height = 64
max_width = 128
max_height = 128

[models.tiny-sd3]
family = "sd3"
path = "{sd3}"
[models.tiny-sd3.limits]
max_width = 128
max_height = 128

[models.tiny-sd3-cached]
family = "sd3"
path = "{sd3}"
[models.tiny-sd3-cached.accel]
cache = "first_block_cache"
cache_threshold = 0.5

[models.tiny-mlm]
family = "dllm"
path = "{mlm}"
[models.tiny-mlm.defaults]
gen_length = 16
block_length = 8
steps = 8
[models.tiny-mlm.limits]
max_gen_length = 64
max_batch = 4

[models.tiny-mlm-chat]
family = "dllm"
path = "{chat}"
[models.tiny-mlm-chat.defaults]
gen_length = 16
block_length = 8
steps = 8
"""
    )
    return path


@pytest.fixture(scope="session")
def settings(database_url: str, broker_url: str, s3_endpoint: str, models_file: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        broker_url=broker_url,
        store="s3",
        s3_endpoint=s3_endpoint,
        s3_access_key="genq-test",
        s3_secret_key="genq-test-secret",
        s3_bucket=f"genq-test-{os.getpid()}",
        secret_key="test-secret-not-for-production",
        models_file=str(models_file),
        queue=f"genq.test.{os.getpid()}",
        storage_backoff_s=0.01,
        lease_s=30,
        webhook_queue=f"genq.test.{os.getpid()}.webhooks",
        webhook_allow_hosts="127.0.0.1",
        # The Standard Webhooks schedule (5 s … 24 h) shrunk 10,000 times: 0.5 ms … 8.6 s.
        webhook_schedule_scale=0.0001,
        webhook_poll_s=0.1,
        webhook_progress_interval_s=3600,
        reconcile_every_s=3600,  # reconciler tests call it themselves
    )


@pytest.fixture(scope="session")
def worker(settings: Settings, workdir: Path) -> Iterator[ls.Service]:
    """A real Celery worker process consuming this run's queue."""
    log = workdir / "worker.log"
    env = {**settings.to_env(), "GENQ_PRELOAD_MODELS": "tiny-sd"}  # ready = loaded + healthy
    service = ls.start_worker(env, log, queues=settings.queue)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def control_worker(settings: Settings, workdir: Path) -> Iterator[ls.Service]:
    """The CPU worker for webhooks and the reconciler, with the beat scheduler, as deployed."""
    from genq.broker import CONTROL_QUEUE

    log = workdir / "control.log"
    queues = f"{CONTROL_QUEUE},{settings.webhook_queue}"
    service = ls.start_worker(settings.to_env(), log, queues=queues, beat=True)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def app(settings: Settings):
    from api import create_app

    return create_app({"TESTING": True, "GENQ_SETTINGS": settings})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def session(settings: Settings):
    from storage.db import session_factory

    with session_factory(settings.database_url)() as s:
        yield s


def _key(settings: Settings, owner: str) -> dict[str, str]:
    from storage.db import session_factory
    from storage.keys import create_key

    with session_factory(settings.database_url)() as s:
        return {"Authorization": f"Bearer {create_key(s, owner)}"}


@pytest.fixture
def owner() -> str:
    return f"alice-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def auth(settings: Settings, owner: str) -> dict[str, str]:
    """Headers for a fresh owner, so tests never see each other's jobs."""
    return _key(settings, owner)


@pytest.fixture
def other_auth(settings: Settings) -> dict[str, str]:
    return _key(settings, f"bob-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def wait_for(client) -> Callable[..., dict[str, Any]]:
    """Poll a job over HTTP until ``until(job)`` holds; returns the job JSON."""

    def _wait(
        job_id: str,
        headers: dict[str, str],
        until: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        until = until or (lambda j: j["status"] in ("succeeded", "failed", "canceled"))
        deadline = time.monotonic() + timeout
        while True:
            job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job never reached the expected state: {job}")
            time.sleep(0.02)

    return _wait


@pytest.fixture
def unpublished_job(session, owner: str) -> Callable[..., Any]:
    """Make a queued job of the test's owner whose task was never published (as if the API
    died between its commit and the publish); keyword arguments override its fields."""
    from storage import jobs

    def make(**fields: Any):
        values = {
            "owner": owner,
            "kind": "noop",
            "model": "noop",
            "input": {},
            "seed": 1,
            "queue": "unused",
            **fields,
        }
        return jobs.create_job(session, **values)[0]

    return make
