"""The contract between workers and pipelines: plain inputs in, images out, two callbacks.

Workers pass an ``on_step(step, total)`` callback; it reports progress and may raise
:class:`JobCanceled`, which a pipeline lets propagate so that decoding is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

OnStep = Callable[[int, int], None]


class JobCanceled(Exception):
    """Raised from a step callback when the job was canceled; the pipeline stops at once."""


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    num_images: int
    seed: int
    negative_prompt: str | None = None


@dataclass
class GenerationResult:
    images: list[Any]  # PIL.Image.Image
    # Seconds per stage, merged into the job's metrics.
    stages: dict[str, float] = field(default_factory=dict)
    # Extra fields for the job's output (e.g. the scheduler used).
    output: dict[str, Any] = field(default_factory=dict)


class Pipeline(Protocol):
    def __call__(self, request: ImageRequest, on_step: OnStep) -> GenerationResult: ...
