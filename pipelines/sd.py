"""Stable Diffusion 1.x/2.x: one CLIP text encoder, a UNet, classifier-free guidance."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from diffusers import StableDiffusionPipeline

from pipelines.composed import ComposedPipeline
from pipelines.schedulers import DIFFUSION_SCHEDULERS, SchedulerFactory
from pipelines.stages import (
    ConditioningStage,
    DecodingStage,
    DenoisingStage,
    ImageEncodingStage,
    InputValidationStage,
    LatentPreparationStage,
    State,
    TextEncodingStage,
    TimestepPreparationStage,
    guidance_batch,
    token_ids,
)


def encode_prompt(tokenizer, text_encoder, text: str) -> tuple[torch.Tensor, None]:
    """CLIP's last hidden states, after its final layer norm."""
    return text_encoder(token_ids(tokenizer, text, text_encoder.device))[0], None


def condition(state: State) -> dict[str, Any]:
    embeds = guidance_batch(state, state.negative_prompt_embeds, state.prompt_embeds)
    return {"encoder_hidden_states": embeds}


def predict_noise(unet, latents: torch.Tensor, t: torch.Tensor, conditioning: dict[str, Any]):
    return unet(latents, t, **conditioning, return_dict=False)[0]


def to_latents(vae_config, latents: torch.Tensor) -> torch.Tensor:
    return vae_config.scaling_factor * latents


def from_latents(vae_config, latents: torch.Tensor) -> torch.Tensor:
    return latents / vae_config.scaling_factor


class SDPipeline(ComposedPipeline):
    family = "sd"
    diffusers_class = StableDiffusionPipeline
    required_components = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
    unused_components = ("safety_checker", "feature_extractor", "image_encoder")
    load_options = {"requires_safety_checker": False}
    denoiser_name = "unet"

    @property
    def min_size(self) -> int:
        """The UNet's lowest level must be at least 2x2 latent cells: torch's GroupNorm refuses
        a group holding a single value, which one unguided image at 1x1 can give."""
        levels = len(self.components["unet"].config.block_out_channels)
        return self.vae_scale_factor * 2**levels

    def build(self) -> None:
        c, device = self.components, self.device
        check = InputValidationStage(self.family, self.size_multiple, self.min_size)
        schedulers = SchedulerFactory(c["scheduler"], DIFFUSION_SCHEDULERS)
        schedule = TimestepPreparationStage(self.family, schedulers, device)
        encode = TextEncodingStage(partial(encode_prompt, c["tokenizer"], c["text_encoder"]))
        conditioning = ConditioningStage(condition)
        denoise = DenoisingStage(c["unet"], predict_noise)
        decode = DecodingStage(c["vae"], self.image_processor, from_latents)
        from_noise = LatentPreparationStage(
            c["unet"].config.in_channels, self.vae_scale_factor, device
        )
        from_image = ImageEncodingStage(c["vae"], self.image_processor, to_latents, device)

        self.text_to_image = [check, schedule, encode, conditioning, from_noise, denoise, decode]
        self.image_to_image = [check, schedule, encode, conditioning, from_image, denoise, decode]
