"""Decoding: latents through the VAE decoder, then diffusers' image processor to PIL or floats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pipelines.stages.base import PipelineStage, State

# (VAE config, denoiser-space latents) -> VAE-space latents: the family's unscale and unshift.
FromLatents = Callable[[Any, torch.Tensor], torch.Tensor]


class DecodingStage(PipelineStage):
    name = "decoding"
    needs = ("latents",)

    def __init__(self, vae, image_processor, from_latents: FromLatents):
        self.vae = vae
        self.image_processor = image_processor
        self.from_latents = from_latents

    def forward(self, state: State) -> State:
        # The VAE may run in a wider dtype than the denoiser (SDXL's overflows in float16).
        latents = self.from_latents(self.vae.config, state.latents).to(self.vae.dtype)
        pixels = self.vae.decode(latents, return_dict=False)[0]
        state.images = list(self.image_processor.postprocess(pixels, output_type=state.output_type))
        return state

    def verify_output(self, state: State) -> None:
        if len(state.images) != state.request.num_images:
            raise RuntimeError(
                f"decoded {len(state.images)} images for {state.request.num_images} requested"
            )
