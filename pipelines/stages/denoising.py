"""Denoising: the familiar loop, with the family's denoiser call as a function.

Progress goes to ``state.on_step``: ``(0, total)`` first, then ``(i + 1, total)`` after each
step. A ``JobCanceled`` it raises leaves the loop at once and, propagating, skips decoding.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from pipelines.accel import denoising_session
from pipelines.stages.base import PipelineStage, State

# (denoiser, model input, timestep, conditioning keyword arguments) -> model output.
Predict = Callable[[Any, torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor]


def step_kwargs(scheduler, generator: torch.Generator) -> dict[str, Any]:
    """Stochastic schedulers (Euler ancestral, DDIM with eta) draw from the request's seed."""
    accepted = inspect.signature(scheduler.step).parameters
    return {"generator": generator} if "generator" in accepted else {}


class DenoisingStage(PipelineStage):
    name = "denoising"
    needs = ("scheduler", "timesteps", "latents")

    def __init__(self, denoiser, predict: Predict, cached: bool = False):
        self.denoiser = denoiser
        self.predict = predict
        # Whether diffusers' cache hooks are on the denoiser (see pipelines.accel).
        self.cached = cached

    def forward(self, state: State) -> State:
        scheduler, timesteps, latents = state.scheduler, state.timesteps, state.latents
        guidance_scale = state.request.guidance_scale
        extra = step_kwargs(scheduler, state.generator)
        total = len(timesteps)
        state.on_step(0, total)
        with denoising_session(self.denoiser, self.cached):
            for i, t in enumerate(timesteps):
                model_input = torch.cat([latents] * 2) if state.guided else latents
                if hasattr(scheduler, "scale_model_input"):
                    model_input = scheduler.scale_model_input(model_input, t)
                prediction = self.predict(self.denoiser, model_input, t, state.conditioning)
                if state.guided:
                    unconditional, conditional = prediction.chunk(2)
                    prediction = unconditional + guidance_scale * (conditional - unconditional)
                latents = scheduler.step(prediction, t, latents, **extra, return_dict=False)[0]
                state.on_step(i + 1, total)
        state.latents = latents
        return state
