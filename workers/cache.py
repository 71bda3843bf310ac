"""Warm pipelines, one load per model per worker process."""

from __future__ import annotations

import threading
import time

from pipelines.base import Pipeline
from pipelines.registry import ModelSpec

_pipelines: dict[tuple[str, str | None, str], Pipeline] = {}
_lock = threading.Lock()
loads = 0  # how many loads this process has done; read by tests and benchmarks


def get_pipeline(spec: ModelSpec, device: str) -> tuple[Pipeline, float]:
    """The warm pipeline for ``spec`` and the seconds spent loading it now (0 when warm)."""
    global loads
    key = (spec.family, spec.path, device)
    with _lock:
        pipeline = _pipelines.get(key)
        if pipeline is not None:
            return pipeline, 0.0
        from pipelines.loader import load_pipeline

        started = time.perf_counter()
        pipeline = load_pipeline(spec, device)
        _pipelines[key] = pipeline
        loads += 1
        return pipeline, time.perf_counter() - started
