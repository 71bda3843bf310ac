"""Warm pipelines, one load per model per worker process, each health-checked once loaded.

A pipeline that fails its health request (one step at the smallest size) is not cached: the
job fails with ``model_unhealthy``, and a worker that preloads it never becomes ready.
"""

from __future__ import annotations

import logging
import threading
import time

from pipelines.base import Pipeline
from pipelines.registry import ModelSpec

log = logging.getLogger("genq.worker")

# Keyed by model name, not path: two registry entries may share weights but differ in
# acceleration settings.
_pipelines: dict[tuple[str, str], Pipeline] = {}
_lock = threading.Lock()
loads = 0  # how many loads this process has done; read by tests and benchmarks


class ModelUnhealthy(Exception):
    """The model loaded but its health request failed."""


def get_pipeline(spec: ModelSpec, device: str) -> tuple[Pipeline, float]:
    """The warm pipeline for ``spec`` and the seconds spent loading it now (0 when warm)."""
    global loads
    key = (spec.name, device)
    with _lock:
        pipeline = _pipelines.get(key)
        if pipeline is not None:
            return pipeline, 0.0
        from pipelines.loader import load_pipeline

        started = time.perf_counter()
        pipeline = load_pipeline(spec, device)
        check = getattr(pipeline, "check_health", None)
        if check is not None:
            try:
                check()
            except Exception as exc:
                raise ModelUnhealthy(f"model {spec.name} failed its health request: {exc}") from exc
        _pipelines[key] = pipeline
        loads += 1
        log.info("model %s loaded and healthy on %s", spec.name, device)
        return pipeline, time.perf_counter() - started
