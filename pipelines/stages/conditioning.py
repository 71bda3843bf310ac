"""Conditioning: the denoiser's keyword arguments for a request, built once before the loop.

The family's ``condition(state)`` says what the denoiser takes (cross-attention states, SDXL's
pooled text and size "time ids", SD3's pooled projections); :func:`guidance_batch` stacks the
unconditional half first, in the order the denoising loop splits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pipelines.stages.base import PipelineStage, State

Condition = Callable[[State], dict[str, Any]]


def guidance_batch(state: State, negative: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """``[negative; positive]`` under classifier-free guidance, else ``positive`` alone."""
    return torch.cat([negative, positive]) if state.guided else positive


class ConditioningStage(PipelineStage):
    name = "conditioning"
    needs = ("prompt_embeds",)

    def __init__(self, condition: Condition):
        self.condition = condition

    def forward(self, state: State) -> State:
        state.conditioning = self.condition(state)
        return state
