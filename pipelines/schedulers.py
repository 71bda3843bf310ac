"""Schedulers by the names jobs use (see ``pipelines.image_params.SCHEDULERS``).

A scheduler keeps per-run state (its step index, DPM-Solver's previous outputs), so a pipeline
never shares one between requests: it keeps the checkpoint's scheduler config and builds a fresh
scheduler from it for each request, which costs about a millisecond.
"""

from __future__ import annotations

from collections.abc import Mapping

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# Noise-prediction (DDPM-trained) checkpoints: SD 1.x/2.x and SDXL.
DIFFUSION_SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    # DPM-Solver++ of order 2, multistep: diffusers' defaults for this class.
    "dpmpp_2m": DPMSolverMultistepScheduler,
}
# Flow-matching checkpoints: SD3.
FLOW_SCHEDULERS: dict[str, type[SchedulerMixin]] = {"euler": FlowMatchEulerDiscreteScheduler}


class SchedulerFactory:
    """Fresh schedulers, by name, from the checkpoint's scheduler config."""

    def __init__(self, checkpoint: SchedulerMixin, choices: Mapping[str, type[SchedulerMixin]]):
        self.config = checkpoint.config
        self.default = type(checkpoint)
        self.choices = dict(choices)

    def create(self, name: str | None) -> tuple[str, SchedulerMixin]:
        """The scheduler named (``None``: the checkpoint's own) and the name to record."""
        if name is None:
            cls = self.default
            name = next((n for n, c in self.choices.items() if c is cls), cls.__name__)
        else:
            cls = self.choices[name]
        return name, cls.from_config(self.config)
