"""SDXL: two CLIP text encoders, a UNet conditioned on pooled text and image-size "time ids"."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from diffusers import StableDiffusionXLPipeline

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


def encode_prompt(tokenizers, text_encoders, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both CLIPs' penultimate hidden states side by side, and the second's projected pooled
    output."""
    hidden = []
    for tokenizer, text_encoder in zip(tokenizers, text_encoders, strict=True):
        out = text_encoder(
            token_ids(tokenizer, text, text_encoder.device), output_hidden_states=True
        )
        hidden.append(out.hidden_states[-2])
    return torch.cat(hidden, dim=-1), out[0]


def time_ids(height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """SDXL's size conditioning: original size, crop top-left corner, target size. Asking for
    an uncropped image of the requested size is what diffusers does by default."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype)


def condition(state: State) -> dict[str, Any]:
    request = state.request
    sizes = time_ids(request.height, request.width, state.prompt_embeds.dtype)
    rows = request.num_images * (2 if state.guided else 1)
    return {
        "encoder_hidden_states": guidance_batch(
            state, state.negative_prompt_embeds, state.prompt_embeds
        ),
        "added_cond_kwargs": {
            "text_embeds": guidance_batch(
                state, state.negative_pooled_prompt_embeds, state.pooled_prompt_embeds
            ),
            "time_ids": sizes.to(state.prompt_embeds.device).repeat(rows, 1),
        },
    }


def predict_noise(unet, latents: torch.Tensor, t: torch.Tensor, conditioning: dict[str, Any]):
    return unet(latents, t, **conditioning, return_dict=False)[0]


def to_latents(vae_config, latents: torch.Tensor) -> torch.Tensor:
    if vae_config.latents_mean is not None and vae_config.latents_std is not None:
        mean, std = _latent_stats(vae_config, latents)
        return (latents - mean) * vae_config.scaling_factor / std
    return vae_config.scaling_factor * latents


def from_latents(vae_config, latents: torch.Tensor) -> torch.Tensor:
    if vae_config.latents_mean is not None and vae_config.latents_std is not None:
        mean, std = _latent_stats(vae_config, latents)
        return latents * std / vae_config.scaling_factor + mean
    return latents / vae_config.scaling_factor


def _latent_stats(vae_config, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(vae_config.latents_mean).view(1, -1, 1, 1).to(like.device, like.dtype)
    std = torch.tensor(vae_config.latents_std).view(1, -1, 1, 1).to(like.device, like.dtype)
    return mean, std


class SDXLPipeline(ComposedPipeline):
    family = "sdxl"
    diffusers_class = StableDiffusionXLPipeline
    required_components = (
        "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler"
    )  # fmt: skip
    unused_components = ("image_encoder", "feature_extractor")
    load_options = {"add_watermarker": False}
    denoiser_name = "unet"

    @classmethod
    def prepare_components(cls, components: dict[str, Any], dtype: torch.dtype) -> None:
        # SDXL's VAE overflows in float16; diffusers upcasts it for every decode, genq once.
        vae = components["vae"]
        if dtype == torch.float16 and vae.config.force_upcast:
            vae.to(torch.float32)

    @property
    def min_size(self) -> int:
        """The UNet's lowest level must be at least 2x2 latent cells: torch's GroupNorm refuses
        a group holding a single value, which one unguided image at 1x1 can give."""
        levels = len(self.components["unet"].config.block_out_channels)
        return self.vae_scale_factor * 2**levels

    def build(self) -> None:
        c, device = self.components, self.device
        unet = c["unet"]
        if self.config.get("requires_aesthetics_score"):
            raise ValueError(
                "SDXL checkpoints conditioned on aesthetic scores (the refiner) are not supported"
            )
        expected = unet.add_embedding.linear_1.in_features
        given = 6 * unet.config.addition_time_embed_dim + c["text_encoder_2"].config.projection_dim
        if expected != given:
            raise ValueError(f"SDXL UNet expects {expected} added conditioning values, not {given}")

        check = InputValidationStage(self.family, self.size_multiple, self.min_size)
        schedulers = SchedulerFactory(c["scheduler"], DIFFUSION_SCHEDULERS)
        schedule = TimestepPreparationStage(self.family, schedulers, device)
        encode = TextEncodingStage(
            partial(
                encode_prompt,
                (c["tokenizer"], c["tokenizer_2"]),
                (c["text_encoder"], c["text_encoder_2"]),
            ),
            zeros_for_empty_negative=self.config.get("force_zeros_for_empty_prompt", True),
        )
        conditioning = ConditioningStage(condition)
        denoise = DenoisingStage(unet, predict_noise)
        decode = DecodingStage(c["vae"], self.image_processor, from_latents)
        from_noise = LatentPreparationStage(unet.config.in_channels, self.vae_scale_factor, device)
        from_image = ImageEncodingStage(c["vae"], self.image_processor, to_latents, device)

        self.text_to_image = [check, schedule, encode, conditioning, from_noise, denoise, decode]
        self.image_to_image = [check, schedule, encode, conditioning, from_image, denoise, decode]
