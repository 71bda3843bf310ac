"""The starting latents: pure noise for text-to-image, the noised input image for image-to-image.

Both draw from the request's generator in the order diffusers' pipelines do (image-to-image:
the VAE's posterior sample, then the noise), so a seed gives the same image as diffusers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

from pipelines.stages.base import PipelineStage, State

# (VAE config, VAE-space latents) -> denoiser-space latents: the family's scale and shift.
ToLatents = Callable[[Any, torch.Tensor], torch.Tensor]
# (scheduler, clean latents, noise, timesteps) -> latents noised to those timesteps.
AddNoise = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def add_noise(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
    """Diffusion schedulers' forward process."""
    return scheduler.add_noise(latents, noise, timesteps)


class LatentPreparationStage(PipelineStage):
    name = "latent_preparation"
    needs = ("scheduler", "prompt_embeds")

    def __init__(self, channels: int, vae_scale_factor: int, device: torch.device | str):
        self.channels = channels
        self.vae_scale_factor = vae_scale_factor
        self.device = device

    def forward(self, state: State) -> State:
        request, factor = state.request, self.vae_scale_factor
        shape = (
            request.num_images,
            self.channels,
            request.height // factor,
            request.width // factor,
        )
        latents = randn_tensor(
            shape, generator=state.generator, device=self.device, dtype=state.prompt_embeds.dtype
        )
        # Flow-matching schedulers have no init_noise_sigma: they start from unit noise.
        sigma = getattr(state.scheduler, "init_noise_sigma", None)
        state.latents = latents if sigma is None else latents * sigma
        return state


class ImageEncodingStage(PipelineStage):
    """The input image through the VAE encoder, noised to the first timestep that will run."""

    name = "image_encoding"
    needs = ("scheduler", "timesteps", "prompt_embeds")

    def __init__(
        self,
        vae,
        image_processor,
        to_latents: ToLatents,
        device: torch.device | str,
        noise: AddNoise = add_noise,
    ):
        self.vae = vae
        self.image_processor = image_processor
        self.to_latents = to_latents
        self.device = device
        self.noise = noise

    def forward(self, state: State) -> State:
        request, dtype = state.request, state.prompt_embeds.dtype
        pixels = self.image_processor.preprocess(
            request.image, height=request.height, width=request.width
        ).to(device=self.device, dtype=self.vae.dtype)
        posterior = self.vae.encode(pixels).latent_dist
        clean = self.to_latents(self.vae.config, posterior.sample(state.generator).to(dtype))
        # cat, not repeat: it keeps the VAE output's memory format (channels-last), and with it
        # the convolution kernels, so results match diffusers' to the bit.
        clean = torch.cat([clean] * request.num_images)
        noise = randn_tensor(
            clean.shape, generator=state.generator, device=self.device, dtype=dtype
        )
        start = state.timesteps[:1].repeat(request.num_images)
        state.latents = self.noise(state.scheduler, clean, noise, start)
        return state
