"""Text-to-image with a Stable Diffusion family checkpoint, behind genq's Pipeline contract."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline

from pipelines.base import GenerationResult, ImageRequest, OnStep


class StableDiffusionTextToImage:
    """Wraps a loaded ``StableDiffusionPipeline``; one instance serves many requests."""

    def __init__(self, pipe: StableDiffusionPipeline, device: str):
        self._pipe = pipe
        self._device = device

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str, dtype: torch.dtype
    ) -> StableDiffusionTextToImage:
        """Load a diffusers-layout checkpoint from a local directory; never downloads."""
        pipe = StableDiffusionPipeline.from_pretrained(
            path,
            safety_checker=None,
            requires_safety_checker=False,
            local_files_only=True,
        )
        # Cast after loading: diffusers renamed its dtype argument across releases, and
        # ``.to`` means the same in all of them.
        pipe = pipe.to(device, dtype)
        # Progress goes through on_step; tqdm bars would only clutter worker logs.
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, device)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell: width and height must be multiples of it."""
        return int(self._pipe.vae_scale_factor)

    def _total_steps(self, num_inference_steps: int) -> int:
        """Denoising iterations the scheduler will run, which is what the callback counts.

        Equal to ``num_inference_steps`` for DDIM, Euler or DPM++, but not for all schedulers:
        PNDM adds warm-up steps and second-order ones (Heun) run about twice as many.
        """
        scheduler = self._pipe.scheduler
        scheduler.set_timesteps(num_inference_steps)
        return len(scheduler.timesteps)

    def __call__(self, request: ImageRequest, on_step: OnStep) -> GenerationResult:
        """Generate ``request.num_images`` images; a JobCanceled from ``on_step`` propagates."""
        total = self._total_steps(request.num_inference_steps)
        on_step(0, total)

        def step_end(
            pipe: StableDiffusionPipeline, i: int, t: Any, kwargs: dict[str, Any]
        ) -> dict[str, Any]:
            # Raising here leaves diffusers' loop before the VAE decode: cancellation is cheap.
            on_step(i + 1, total)
            return {}

        generator = torch.Generator(self._device).manual_seed(request.seed)
        started = time.perf_counter()
        out = self._pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            width=request.width,
            height=request.height,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            num_images_per_prompt=request.num_images,
            generator=generator,
            output_type="pil",
            callback_on_step_end=step_end,
        )
        seconds = time.perf_counter() - started
        return GenerationResult(
            images=list(out.images),
            stages={"pipeline": seconds},
            output={"scheduler": type(self._pipe.scheduler).__name__},
        )
