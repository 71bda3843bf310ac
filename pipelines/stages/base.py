"""The stage framework: one request's :class:`State` passed through a list of stages.

A stage holds components (models, processors, the family's small maths functions), never
request state: everything a request makes lives in its ``State``, so one stage instance serves
every request of a pipeline. The base ``__call__`` times ``forward`` into ``state.stages``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, final

from pipelines.base import ImageRequest, OnStep

if TYPE_CHECKING:
    import torch


@dataclass
class State:
    """One request on its way through the stages: its inputs, then what each stage makes."""

    request: ImageRequest
    on_step: OnStep
    generator: torch.Generator
    # "pil" for jobs; "np" gives the decoded float arrays (fidelity tests, health checks).
    output_type: str = "pil"
    # Timestep preparation: a scheduler of this request's own (schedulers keep step state).
    scheduler_name: str | None = None
    scheduler: Any = None
    timesteps: torch.Tensor | None = None
    # Text encoding, one row per image; pooled embeddings only for families that use them.
    prompt_embeds: torch.Tensor | None = None
    negative_prompt_embeds: torch.Tensor | None = None
    pooled_prompt_embeds: torch.Tensor | None = None
    negative_pooled_prompt_embeds: torch.Tensor | None = None
    # Conditioning: the denoiser's keyword arguments, the unconditional half first if guided.
    conditioning: dict[str, Any] = field(default_factory=dict)
    latents: torch.Tensor | None = None
    images: list[Any] = field(default_factory=list)
    # Seconds per stage name.
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def image_to_image(self) -> bool:
        return self.request.image is not None

    @property
    def guided(self) -> bool:
        """Classifier-free guidance: the denoiser also sees the negative (or empty) prompt."""
        return self.request.guidance_scale > 1


class PipelineStage:
    """One step of a pipeline; subclasses set ``name`` and implement ``forward``."""

    name: ClassVar[str]
    # State fields ``forward`` reads, checked by the default ``verify_input``.
    needs: ClassVar[tuple[str, ...]] = ()

    def forward(self, state: State) -> State:
        raise NotImplementedError

    def verify_input(self, state: State) -> None:
        """Fail loudly when the stages are in the wrong order, not deep inside a model."""
        missing = [name for name in self.needs if getattr(state, name) is None]
        if missing:
            raise RuntimeError(f"stage {self.name!r} runs before {missing} are set")

    def verify_output(self, state: State) -> None:
        pass

    @final
    def __call__(self, state: State) -> State:
        self.verify_input(state)
        started = time.perf_counter()
        try:
            state = self.forward(state)
        finally:
            _synchronize()
            state.stages[self.name] = state.stages.get(self.name, 0.0) + (
                time.perf_counter() - started
            )
        self.verify_output(state)
        return state


def _synchronize() -> None:
    """Wait for queued GPU work, so its time counts for the stage that queued it."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
