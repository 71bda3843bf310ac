"""The warm cache: one load per model per process, and unhealthy models are never served."""

from __future__ import annotations

import pytest

from pipelines.registry import ModelSpec
from workers import cache


class FakePipeline:
    def __init__(self, healthy: bool):
        self.healthy = healthy

    def check_health(self) -> None:
        if not self.healthy:
            raise RuntimeError("output is all NaN")


@pytest.fixture
def loads(monkeypatch):
    made = []

    def load(spec, device):
        made.append(spec.name)
        return FakePipeline(healthy=spec.name != "broken")

    monkeypatch.setattr("pipelines.loader.load_pipeline", load)
    monkeypatch.setattr(cache, "_pipelines", {})
    return made


def spec(name: str) -> ModelSpec:
    return ModelSpec(name=name, kind="image", family="sd", path=f"/models/{name}")


def test_one_load_per_model(loads):
    first, load_s = cache.get_pipeline(spec("a"), "cpu")
    again, warm_s = cache.get_pipeline(spec("a"), "cpu")
    assert first is again and warm_s == 0.0 and load_s >= 0
    assert loads == ["a"]


def test_unhealthy_model_is_not_cached(loads):
    with pytest.raises(cache.ModelUnhealthy, match="all NaN"):
        cache.get_pipeline(spec("broken"), "cpu")
    with pytest.raises(cache.ModelUnhealthy):
        cache.get_pipeline(spec("broken"), "cpu")
    assert loads == ["broken", "broken"]  # tried again, never served


def test_worker_with_a_failing_preload_stops(settings, workdir):
    """A worker whose models cannot be made ready takes no jobs: it stops."""
    import sys
    import time

    from genq import local_services as ls

    env = {
        **settings.to_env(),
        "GENQ_PRELOAD_MODELS": "no-such-model",
        "GENQ_QUEUE": f"{settings.queue}.never",
    }
    log = workdir / "failing-preload.log"
    process = ls._spawn(
        [sys.executable, "-m", "genq.cli", "worker", "--queues", env["GENQ_QUEUE"]], env, log
    )
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if process.poll() is None:
        process.kill()
    assert process.returncode is not None, "the worker kept running"
    assert "preloading no-such-model failed" in log.read_text()
