"""Transient object-store failures are retried with backoff; persistent ones fail clearly."""

from __future__ import annotations

import pytest

from storage import jobs
from workers import job as worker_job


class FlakyStore:
    def __init__(self, failures: int):
        self.failures, self.calls, self.objects = failures, 0, {}

    def put(self, key, data, content_type):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("S3 endpoint unreachable")
        self.objects[key] = data

    def url(self, key, ttl_s):
        return f"memory://{key}", None


def run_with_store(session, owner, settings, store, monkeypatch):
    monkeypatch.setattr(worker_job, "_store", lambda _settings: store)
    job, _ = jobs.create_job(
        session,
        owner=owner,
        kind="image",
        model="tiny-sd",
        queue="unused",
        seed=3,
        input={
            "prompt": "retry",
            "width": 64,
            "height": 64,
            "num_inference_steps": 2,
            "guidance_scale": 7.5,
            "num_images": 1,
        },
    )
    return job.id, worker_job.execute_job(job.id, settings)


def test_transient_storage_errors_are_retried(session, owner, settings, monkeypatch):
    store = FlakyStore(failures=2)
    job_id, outcome = run_with_store(session, owner, settings, store, monkeypatch)
    assert outcome == "succeeded"
    assert store.calls == 3
    assert list(store.objects) == [f"{owner}/{job_id}/0.png"]


def test_persistent_storage_errors_fail_the_job_with_a_reason(
    session, owner, settings, monkeypatch
):
    store = FlakyStore(failures=100)
    job_id, outcome = run_with_store(session, owner, settings, store, monkeypatch)
    assert outcome == "failed"
    assert store.calls == settings.storage_retries
    session.expire_all()
    job = jobs.get_job(session, job_id)
    assert job.error["code"] == "storage_unavailable"
    assert "unreachable" in job.error["message"]


@pytest.mark.parametrize("tries", [1, 3])
def test_with_retries_gives_up_after_its_tries(tries):
    calls = []

    def boom():
        calls.append(1)
        raise OSError("down")

    with pytest.raises(worker_job.StorageUnavailable):
        worker_job.with_retries(boom, tries=tries, backoff_s=0, what="put")
    assert len(calls) == tries
