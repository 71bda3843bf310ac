"""The worker's Celery app: ``celery -A workers.celery worker``.

One prefork process per device (``--concurrency`` = devices in the pool); each process pins
its device at start and loads pipelines lazily, once per model, on its first job.
"""

from __future__ import annotations

import logging

from celery.signals import worker_process_init

from genq.broker import make_celery
from genq.settings import get_settings

log = logging.getLogger("genq.worker")

app = make_celery(get_settings())
app.conf.include = ["workers.tasks"]


@worker_process_init.connect
def _init_process(**_: object) -> None:
    """Fast per-process setup only: fresh DB connections and the device this process owns."""
    from storage.db import reset_engines
    from workers.device import pin_device

    reset_engines()
    pin_device(get_settings().device)
