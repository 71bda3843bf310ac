"""The no-op pipeline: measures the queue, not the model.

Queue benchmarks run jobs through it so that broker, database and worker overheads show up
without any model time. It loads nothing and produces no images.
"""

from __future__ import annotations

from pipelines.base import GenerationResult, ImageRequest, OnStep


class NoopPipeline:
    """Returns at once; never calls ``on_step``, so it has no steps to report or cancel."""

    def __call__(self, request: ImageRequest, on_step: OnStep) -> GenerationResult:
        return GenerationResult(images=[], stages={}, output={"noop": True})
