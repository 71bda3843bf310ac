"""Celery configuration shared by the publisher (API, reconciler) and the workers.

Both sides must agree on serializer, routes and the Redis visibility timeout, so they read
the same mapping. Building it imports Celery only, never torch.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from genq.settings import Settings

log = logging.getLogger("genq.broker")

RUN_JOB = "genq.run_job"
RECONCILE = "genq.reconcile"
DELIVER_WEBHOOKS = "genq.webhooks.deliver"
CONTROL_QUEUE = "genq.control"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for long, GPU-bound jobs whose state lives in the database."""
    transport = {
        # Redis redelivers an unacknowledged task after this many seconds. It must outlive
        # the hard time limit, or a long job would run twice at once.
        "visibility_timeout": settings.visibility_timeout_s,
    }
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Job state lives in the database; Celery results would be a second, stale copy.
        "task_ignore_result": True,
        "result_backend": None,
        # Ack after the job ran, and re-queue a task whose worker process died, so a lost
        # worker loses no job. One task per process at a time: jobs are long.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A process preloading and health-checking models may take minutes to start.
        "worker_proc_alive_timeout": 600,
        "task_soft_time_limit": settings.job_soft_limit_s,
        "task_time_limit": settings.job_hard_limit_s,
        "task_default_queue": settings.queue,
        "task_routes": {
            RECONCILE: {"queue": CONTROL_QUEUE},
            DELIVER_WEBHOOKS: {"queue": settings.webhook_queue},
        },
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "reconcile": {"task": RECONCILE, "schedule": settings.reconcile_every_s},
            "webhooks": {"task": DELIVER_WEBHOOKS, "schedule": settings.webhook_poll_s},
        },
    }


def make_celery(settings: Settings, name: str = "genq") -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def kick_webhooks(app: Celery) -> None:
    """Ask the webhook queue to send what is due now. Best effort: the periodic task sends
    it anyway, so a broker hiccup here must not fail the caller's committed change."""
    try:
        app.send_task(DELIVER_WEBHOOKS)
    except Exception as exc:
        log.warning("could not kick the webhook queue: %s", exc)


def publish_job(app: Celery, job_id: str, queue: str) -> None:
    """Hand the job to the broker; the task id is the job id, so duplicates are visible."""
    app.send_task(RUN_JOB, args=[job_id], task_id=job_id, queue=queue)
