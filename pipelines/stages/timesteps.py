"""Timestep preparation: a fresh scheduler for the request and the timesteps it will run.

Image-to-image starts part-way: ``strength`` of the schedule is left to run, from the step
:func:`pipelines.image_params.first_step` gives, and the scheduler is told where it begins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pipelines.image_params import first_step
from pipelines.schedulers import SchedulerFactory
from pipelines.stages.base import PipelineStage, State

# Extra ``set_timesteps`` arguments for a request (SD3's resolution-dependent shift).
TimestepArgs = Callable[[State], dict[str, Any]]


class TimestepPreparationStage(PipelineStage):
    name = "timestep_preparation"

    def __init__(
        self,
        family: str,
        schedulers: SchedulerFactory,
        device: torch.device | str,
        timestep_args: TimestepArgs | None = None,
    ):
        self.family = family
        self.schedulers = schedulers
        self.device = device
        self.timestep_args = timestep_args

    def forward(self, state: State) -> State:
        request = state.request
        state.scheduler_name, scheduler = self.schedulers.create(request.scheduler)
        extra = self.timestep_args(state) if self.timestep_args else {}
        scheduler.set_timesteps(request.num_inference_steps, device=self.device, **extra)
        start = 0
        if state.image_to_image:
            start = first_step(self.family, request.num_inference_steps, request.strength)
            start *= scheduler.order
        state.scheduler = scheduler
        state.timesteps = scheduler.timesteps[start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start)
        return state

    def verify_output(self, state: State) -> None:
        if len(state.timesteps) == 0:
            raise ValueError("num_inference_steps and strength leave no step to run")
