"""Celery tasks. They take ids, never objects, and delegate to plain functions."""

from __future__ import annotations

import logging

from genq.broker import DELIVER_WEBHOOKS, RECONCILE, RUN_JOB, publish_job
from genq.settings import get_settings
from storage import jobs
from storage.db import session_factory
from workers.celery import app
from workers.job import execute_job
from workers.webhooks import deliver_due

log = logging.getLogger("genq.worker")


@app.task(name=RUN_JOB)
def run_job(job_id: str) -> str:
    """Run one generation job (the task id is the job id)."""
    return execute_job(job_id, get_settings())


@app.task(name=RECONCILE)
def reconcile() -> dict[str, int]:
    """Requeue jobs whose worker was lost and republish tasks that never reached a worker."""
    settings = get_settings()
    with session_factory(settings.database_url)() as session:
        result = jobs.reconcile(
            session,
            republish_after_s=settings.republish_after_s,
            max_attempts=settings.max_attempts,
        )
    for job_id, queue in result.republish:
        publish_job(app, job_id, queue)
    if result.republish or result.failed:
        log.info(
            "reconciler: republished %d, requeued %d, failed %d",
            len(result.republish),
            result.requeued,
            result.failed,
        )
    return {
        "republished": len(result.republish),
        "requeued": result.requeued,
        "failed": result.failed,
    }


@app.task(name=DELIVER_WEBHOOKS)
def deliver_webhooks() -> int:
    """Send the webhook deliveries that are due (periodic, and kicked after job events)."""
    return deliver_due(get_settings())
