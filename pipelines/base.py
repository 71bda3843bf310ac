"""The contract between workers and pipelines: plain inputs in, images out, two callbacks.

Workers pass an ``on_step(step, total)`` callback; it reports progress and may raise
:class:`JobCanceled`, which a pipeline lets propagate so that decoding is skipped.

Text pipelines (masked diffusion language models) take a :class:`TextRequest` instead and
return no images; their text is in ``GenerationResult.output``. They may also report each
finished block through an :data:`OnBlock` callback, so partial text can be streamed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

OnStep = Callable[[int, int], None]
# (block number from 1, number of blocks, text decoded so far): a block, once done, is final.
OnBlock = Callable[[int, int, str], None]


class JobCanceled(Exception):
    """Raised from a step callback when the job was canceled; the pipeline stops at once."""


@dataclass(frozen=True)
class ImageRequest:
    """One image generation; see ``pipelines.image_params`` for the rules each field follows.

    With ``image`` (a PIL image, resized to ``width`` x ``height``) the job is image-to-image:
    ``strength`` says how much of the schedule runs on the noised image, 1.0 being all of it.
    ``scheduler`` names one of the family's schedulers; ``None`` keeps the checkpoint's own.
    """

    prompt: str
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    num_images: int
    seed: int
    negative_prompt: str | None = None
    scheduler: str | None = None
    image: Any | None = None  # PIL.Image.Image
    strength: float = 0.8


@dataclass(frozen=True)
class TextRequest:
    """One masked-diffusion text generation; see ``pipelines.dllm`` for what each field does.

    ``threshold`` (in (0, 1]) switches to confidence-threshold parallel decoding, which
    ignores ``steps`` and usually needs far fewer forwards; ``None`` keeps the fixed schedule.
    """

    prompt: str
    gen_length: int
    block_length: int
    steps: int
    temperature: float
    cfg_scale: float
    remasking: str
    seed: int
    threshold: float | None = None
    # Chat turns ({"role", "content"}) rendered with the checkpoint's chat template instead
    # of ``prompt``.
    messages: tuple[dict[str, str], ...] | None = None


@dataclass
class GenerationResult:
    images: list[Any]  # PIL.Image.Image
    # Seconds per stage, merged into the job's metrics.
    stages: dict[str, float] = field(default_factory=dict)
    # Extra fields for the job's output (e.g. the scheduler used).
    output: dict[str, Any] = field(default_factory=dict)


class Pipeline(Protocol):
    def __call__(self, request: ImageRequest, on_step: OnStep) -> GenerationResult: ...


class TextPipeline(Protocol):
    def __call__(
        self, request: TextRequest, on_step: OnStep, on_block: OnBlock | None = None
    ) -> GenerationResult: ...

    def generate_batch(
        self, requests: list[TextRequest], on_step: OnStep | None = None
    ) -> list[GenerationResult]: ...
