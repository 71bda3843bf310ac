"""The baseline: a bare Celery app with one no-op task, on the same Redis as genq."""

import os

from celery import Celery

app = Celery(
    "raw",
    broker=os.environ["RAW_BROKER_URL"],
    backend=os.environ["RAW_BROKER_URL"],
    set_as_current=False,
)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    task_default_queue="bench.raw",
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    return None
