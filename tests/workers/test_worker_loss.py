"""A worker process killed mid-job loses nothing: the job runs again and succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import replace

import pytest

from genq import local_services as ls
from genq.broker import make_celery, publish_job
from storage import jobs
from storage.db import session_factory

SLOW = {
    "model": "tiny-sd-slow",
    "input": {"prompt": "x", "width": 128, "height": 128, "num_inference_steps": 40},
}


@pytest.fixture(scope="module")
def lossy(settings, workdir):
    """Its own queue, a one-second lease, and a worker process we may kill."""
    local = replace(settings, queue=f"{settings.queue}.loss", lease_s=1.0)
    service = ls.start_worker(
        {**local.to_env(), "GENQ_PRELOAD_MODELS": "tiny-sd-slow"},
        workdir / "lossy-worker.log",
        queues=local.queue,
    )
    yield local, service
    service.stop()


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_killed_worker_process_job_is_retried_to_success(lossy, auth, wait_for):
    from api import create_app

    local, service = lossy
    client = create_app({"TESTING": True, "GENQ_SETTINGS": local}).test_client()
    job = client.post("/v1/jobs", json=SLOW, headers=auth).get_json()
    wait_for(job["id"], auth, until=lambda j: (j["progress"] or {}).get("step", 0) >= 2)
    for child in pool_children(service.process.pid):
        os.kill(child, signal.SIGKILL)  # the process running the job dies mid-step
    time.sleep(local.lease_s + 0.5)  # its lease runs out
    with session_factory(local.database_url)() as session:
        result = jobs.reconcile(session, republish_after_s=300, max_attempts=3)
    celery = make_celery(local, "genq-test-reconciler")
    for job_id, queue in result.republish:
        publish_job(celery, job_id, queue)
    done = wait_for(job["id"], auth, timeout=90)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 2
    assert len(done["artifacts"]) == 1
