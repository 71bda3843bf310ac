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
