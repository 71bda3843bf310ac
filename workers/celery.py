"""The worker's Celery app: ``celery -A workers.celery worker``.

One prefork process per device (``--concurrency`` = devices in the pool); each process pins
its device at start and loads pipelines lazily, once per model, on its first job.
"""

from __future__ import annotations

import logging
import os
import signal

from celery.signals import worker_process_init

from genq.broker import make_celery
from genq.settings import Settings, get_settings

log = logging.getLogger("genq.worker")

app = make_celery(get_settings())
app.conf.include = ["workers.tasks"]


@worker_process_init.connect
def _init_process(**_: object) -> None:
    """Fast per-process setup only: fresh DB connections and the device this process owns."""
    from storage.db import reset_engines
    from workers.device import pin_device

    reset_engines()
    settings = get_settings()
    device = pin_device(settings.device)
    if settings.preload_models:
        try:
            preload(settings, device)
        except Exception:
            # Celery would log a failing init and serve anyway: a worker whose models fail
            # their health request must not take jobs, so it stops instead.
            log.critical(
                "preloading %s failed; stopping the worker", settings.preload_models, exc_info=True
            )
            os.kill(os.getppid(), signal.SIGTERM)
            os._exit(1)


def preload(settings: Settings, device: str) -> None:
    """Load and health-check the listed models before this process takes any task: Celery
    sends it nothing until this returns, so the worker is ready only when they pass."""
    from pipelines.registry import load_registry
    from workers.cache import get_pipeline

    registry = load_registry(settings.models_file)
    for name in (n.strip() for n in settings.preload_models.split(",") if n.strip()):
        spec = registry.get(name)
        if spec is None:
            raise ValueError(f"GENQ_PRELOAD_MODELS names {name!r}, which the registry lacks")
        get_pipeline(spec, device)
